"""Reading the CSV and text exports people actually have.

UTF-8 with or without BOM, UTF-16 (Excel's "Unicode text", Google Play
exports), Windows-1252; Excel's ``sep=`` first line; sniffed delimiters;
quoted newlines; duplicate headers renamed ``Name_2``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator


def decode_text(data: bytes) -> str:
    """Text of an export: UTF-16 or UTF-8 by BOM, else UTF-8, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if len(data) > 3 and data[1:2] == b"\x00" and data[3:4] == b"\x00":
        return data.decode("utf-16-le", errors="replace")  # UTF-16 without BOM
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_csv(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header (duplicates renamed ``Name_2``...) and ``(line number, values)`` rows.

    Honours Excel's ``sep=;`` first line and sniffs ``,``/``;``/tab/``|``
    from the header; blank rows are skipped; the line number is where the row ends.
    """
    delimiter = ","
    first, _, rest = text.partition("\n")
    offset = 0
    if first.strip().lower().startswith("sep=") and len(first.strip()) == 5:
        delimiter = first.strip()[4]
        text = rest
        offset = 1
    else:
        try:
            delimiter = csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        raw_header = next(reader)
    except StopIteration:
        return [], iter(())
    header: list[str] = []
    seen: dict[str, int] = {}
    for h in raw_header:
        h = h.strip()
        seen[h] = seen.get(h, 0) + 1
        header.append(h if seen[h] == 1 else f"{h}_{seen[h]}")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for row in reader:
            if row and any(c.strip() for c in row):
                yield reader.line_num + offset, row

    return header, rows()


def csv_line(values: list[str]) -> str:
    """One CSV line (RFC 4180 quoting), for quarantining a row as it was."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


__all__ = ["csv_line", "decode_text", "read_csv"]
