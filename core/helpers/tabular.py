"""Reading the CSV and text exports people actually have.

UTF-8 with or without BOM, UTF-16 (Excel's "Unicode text", Google Play
exports), UTF-32 with a BOM, Windows-1252 (reported as a guess); Excel's ``sep=`` first line; sniffed delimiters;
quoted newlines; duplicate headers renamed ``Name_2``.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Decoded:
    """An export's text and how it was decoded.

    ``encoding`` is what was used; ``guessed`` is true when nothing in the file
    said so (no BOM, not valid UTF-8: read as Windows-1252); ``replaced`` counts
    characters that could not be decoded and were replaced by U+FFFD.
    """

    text: str
    encoding: str
    guessed: bool = False
    replaced: int = 0

    def describe(self) -> str:
        """One line for a run report: the encoding, and whether it was a guess."""
        how = f"decoded as {self.encoding}"
        if self.guessed:
            how += " by guess (no BOM, not valid UTF-8; set encoding if that is wrong)"
        if self.replaced:
            how += f"; {self.replaced} character(s) could not be decoded and were replaced"
        return how


_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _decode(data: bytes, encoding: str, guessed: bool = False) -> Decoded:
    try:
        text, replaced = data.decode(encoding), 0
    except UnicodeDecodeError:
        text = data.decode(encoding, errors="replace")
        replaced = text.count("\ufffd") - data.decode(encoding, errors="ignore").count("\ufffd")
    # the UTF-32 codecs, and an explicit utf-8/utf-16-le/-be, keep the BOM as a character
    return Decoded(text[1:] if text.startswith("\ufeff") else text, encoding, guessed, replaced)


def decode_export(data: bytes, encoding: str | None = None) -> Decoded:
    """Decode an export: ``encoding`` when given; else by BOM (UTF-32, UTF-8, UTF-16),
    UTF-16 LE without BOM, UTF-8, and Windows-1252 as the last guess."""
    if encoding:
        return _decode(data, encoding)
    if data.startswith((b"\xfe\xff", b"\xff\xfe")) and not data.startswith(b"\xff\xfe\x00\x00"):
        wide = _utf32_after_short_bom(data[2:258], len(data) - 2)
        if wide:  # written by tools that put a 2-byte mark before UTF-32 (Salesforce Data Loader's test files)
            found = _decode(data[2:], wide)
            return Decoded(found.text, f"{wide} (after a 2-byte byte-order mark)", False, found.replaced)
    for bom, name in _BOMS:
        if data.startswith(bom):
            return _decode(data, name)
    if len(data) > 3 and data[1:2] == b"\x00" and data[3:4] == b"\x00":
        return _decode(data, "utf-16-le", guessed=True)  # UTF-16 without BOM
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        return _decode(data, "cp1252", guessed=True)


def export_lines(data: bytes | Path, encoding: str | None = None) -> tuple[Iterator[str], Decoded]:
    """An export's lines (each with its line end, split as a file opened with
    ``newline=""`` splits them), decoded as :func:`decode_export` decodes it, without
    making its whole text at once: a 36 MB export is read a line at a time. ``data``
    is the export's bytes, or the path of a file, which is then never held whole (its
    encoding is checked in 1 MiB reads). The :class:`Decoded` says how (its ``text``
    is empty)."""
    if encoding:
        name, guessed = encoding, False
        codecs.lookup(name)  # an unknown name: LookupError now, as decode_export raises it
    else:
        sniffed = _sniff(data)
        if sniffed is None:  # rare and odd (UTF-32 behind a 2-byte mark): decoded whole
            whole = decode_export(data.read_bytes() if isinstance(data, Path) else data)
            return iter(io.StringIO(whole.text, newline="")), Decoded("", whole.encoding, whole.guessed, whole.replaced)
        name, guessed = sniffed
    replaced = _replaced(data, name)

    def lines() -> Iterator[str]:
        with open(data, "rb") if isinstance(data, Path) else io.BytesIO(data) as raw:
            first = True
            for line in io.TextIOWrapper(raw, encoding=name, errors="replace", newline=""):
                if first:
                    first = False
                    if line.startswith("\ufeff"):  # the UTF-32 codecs, and an explicit utf-8/utf-16-le/-be, keep the BOM
                        line = line[1:]
                yield line

    return lines(), Decoded("", name, guessed, replaced)


def count_lines(data: bytes | Path) -> tuple[int, bool]:
    """How many line feeds an export holds, and whether it ends with one: a total for
    :meth:`~crmsync.Source.expect` before reading it (a file is counted in 1 MiB reads)."""
    count, last = 0, b""
    for chunk in _chunks(data):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count, last == b"\n"


def _head(data: bytes | Path, n: int) -> tuple[bytes, int]:
    """The first ``n`` bytes of an export, and its size."""
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            return fh.read(n), os.fstat(fh.fileno()).st_size
    return data[:n], len(data)


def _sniff(data: bytes | Path) -> tuple[str, bool] | None:
    """The encoding decode_export would use: (name, guessed); None for UTF-32 text
    behind a 2-byte mark."""
    head, size = _head(data, 4096)
    if head.startswith((b"\xfe\xff", b"\xff\xfe")) and not head.startswith(b"\xff\xfe\x00\x00") and _utf32_after_short_bom(head[2:], size - 2):
        return None
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, False
    if size > 3 and head[1:2] == b"\x00" and head[3:4] == b"\x00":
        return "utf-16-le", True
    return ("utf-8", False) if _valid(data, "utf-8") else ("cp1252", True)


_CHUNK = 1 << 20


def _chunks(data: bytes | Path) -> Iterator[bytes]:
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
        return
    for i in range(0, len(data), _CHUNK):
        yield data[i : i + _CHUNK]


def _valid(data: bytes | Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for chunk in _chunks(data):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _replaced(data: bytes | Path, encoding: str) -> int:
    """Characters that decoding ``data`` replaces with U+FFFD (in slices, the text thrown away)."""
    if _valid(data, encoding):
        return 0
    lossy, strict = codecs.getincrementaldecoder(encoding)("replace"), codecs.getincrementaldecoder(encoding)("ignore")
    n = 0
    for chunk in _chunks(data):
        n += lossy.decode(chunk).count("\ufffd") - strict.decode(chunk).count("\ufffd")
    return n + lossy.decode(b"", final=True).count("\ufffd") - strict.decode(b"", final=True).count("\ufffd")


def _utf32_after_short_bom(rest: bytes, size: int) -> str | None:
    """``utf-32-be``/``-le`` when ``rest`` (the start of the ``size`` bytes after the
    mark) is UTF-32 text (two zero bytes in every 4)."""
    head = rest[:256]
    if size % 4 or len(head) < 4:
        return None
    units = [head[i:i + 4] for i in range(0, len(head) - 3, 4)]
    if all(u[0] == 0 and u[1] == 0 and u[2:] != b"\x00\x00" for u in units):
        return "utf-32-be"
    if all(u[2] == 0 and u[3] == 0 and u[:2] != b"\x00\x00" for u in units):
        return "utf-32-le"
    return None


def decode_text(data: bytes) -> str:
    """Text of an export: UTF-32, UTF-16 or UTF-8 by BOM, else UTF-8, else Windows-1252
    (:func:`decode_export` also says how)."""
    return decode_export(data).text


class Row(list[str]):
    """The values of one CSV row. ``problem`` is set when the row is malformed
    (an unterminated quote, a broken line): then it holds the values of the
    row's first line only and the reader went on from the line after it."""

    problem: str | None = None


def read_csv(text: str | Iterable[str]) -> tuple[list[str], Iterator[tuple[int, Row]]]:
    """The header (duplicates renamed ``Name_2``...) and ``(line number, values)`` rows.

    ``text`` is the whole export, or its lines with their line ends
    (:func:`export_lines`: then it is read a line at a time). Honours Excel's
    ``sep=;`` first line and sniffs ``,``/``;``/tab/``|`` from the header; blank rows
    are skipped; the line number is where the row ends. Fields of any size are read.
    A quoted field that is never closed would swallow the rest of the file: a row
    that runs over several lines without the header's field count is given back
    alone as its first line with :attr:`Row.problem` set, and reading resumes on the
    next line, so the rows after it are not lost.
    """
    source: Iterator[str] = iter(io.StringIO(text, newline="")) if isinstance(text, str) else iter(text)
    first = next(source, "")
    if not first:
        return [], iter(())
    delimiter = ","
    offset = 0
    pending = [first]
    if first.strip().lower().startswith("sep=") and len(first.strip()) == 5:
        delimiter = first.strip()[4]
        offset = 1
        pending = []
    else:
        try:
            delimiter = csv.Sniffer().sniff(first.partition("\n")[0], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    if csv.field_size_limit() < sys.maxsize:
        csv.field_size_limit(sys.maxsize)  # a long review body is data, not an error
    lines = _Lines(source, pending)
    reader = csv.reader(lines, delimiter=delimiter)
    lines.mark()
    try:
        raw_header = next(reader)
    except StopIteration:
        return [], iter(())
    except csv.Error:
        raw_header = next(csv.reader([lines.taken[0]], delimiter=delimiter), []) if lines.taken else []
        lines.rewind_after_first()
        reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] = []
    seen: dict[str, int] = {}
    for h in raw_header:
        h = h.strip()
        seen[h] = seen.get(h, 0) + 1
        header.append(h if seen[h] == 1 else f"{h}_{seen[h]}")

    def rows() -> Iterator[tuple[int, Row]]:
        nonlocal reader
        while True:
            lines.mark()
            start = lines.at
            problem = None
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem = f"unreadable CSV: {exc}"
                values = []
            if problem is None and (len(values) == len(header) or lines.at - start <= 1):
                if values and any(c.strip() for c in values):
                    yield lines.at + offset, Row(values)
                continue
            # an unclosed quote ran over the lines after it: give back its first line alone
            spanned = lines.at - start
            if problem is None:
                problem = f"row starting on line {start + 1 + offset} runs over {spanned} lines and has {len(values)} fields, the header {len(header)} (an unclosed quote?); the lines after it were read again"
            row = Row(next(csv.reader([lines.taken[0].rstrip("\r\n")], delimiter=delimiter), []) if lines.taken else [])
            row.problem = problem
            lines.rewind_after_first()
            reader = csv.reader(lines, delimiter=delimiter)
            yield start + 1 + offset, row

    return header, rows()


class _Lines:
    """The lines a CSV reader consumes, counted, with the lines of the row being read
    kept (``taken``), so that reading can start again on the line after a malformed
    row's first. Only those are held: the rest of the export is read as it is needed."""

    def __init__(self, source: Iterator[str], pending: list[str]) -> None:
        self.source = source
        self.pending: deque[str] = deque(pending)
        self.taken: list[str] = []
        self.at = 0

    def mark(self) -> None:
        """A row starts here."""
        self.taken = []

    def rewind_after_first(self) -> None:
        """Give back every line of the current row but its first."""
        rest = self.taken[1:]
        self.pending.extendleft(reversed(rest))
        self.at -= len(rest)
        self.taken = self.taken[:1]

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.pending.popleft() if self.pending else next(self.source)
        self.taken.append(line)
        self.at += 1
        return line


def csv_line(values: list[str]) -> str:
    """One CSV line (RFC 4180 quoting), for quarantining a row as it was."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


__all__ = ["Decoded", "Row", "count_lines", "csv_line", "decode_export", "decode_text", "export_lines", "read_csv"]
