"""Which character encoding a feed document is in, the way feed readers decide.

Expat reads UTF-8, UTF-16 and ISO-8859-1 itself, and most feeds are one of
those: they pass through untouched. Anything else (Big5, EUC-KR, GB2312,
Shift_JIS, KOI8-R, Windows-125x, UTF-16 or UTF-32 without a byte-order mark, a
charset given only in the HTTP Content-Type) is decoded here and handed to the
parser as UTF-8 with the XML declaration's encoding removed.

The order of evidence follows feedparser: a byte-order mark; the byte pattern
of ``<?xml`` in UTF-16/UTF-32; the XML declaration; the HTTP charset; then
UTF-8 and Windows-1252 as fallbacks. The first that decodes the whole
document without error wins. An unknown declared encoding is skipped, not fatal.
"""

from __future__ import annotations

import codecs
import re

# what expat decodes natively: the document goes to the parser as it is
_UTF8 = ("utf-8", "utf8", "us-ascii", "ascii")
_NATIVE = {*_UTF8, "iso-8859-1", "latin-1", "latin1", "iso8859-1"}
_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_DECL_TEXT = re.compile(r"""^\s*<\?xml[^>]*\?>""")
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# "<?" (or "<" and a letter) in each wide encoding, for documents without a mark
_SNIFF = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of an HTTP Content-Type, if any."""
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def _canonical(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def to_parser_bytes(data: bytes, charset: str | None = None) -> tuple[bytes, str | None]:
    """``data`` ready for expat (or ``json``), and a note when the encoding was a
    fallback or a declared one was unusable (``None`` when nothing was odd)."""
    head = data[:4]
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name == "utf-8-sig":
                return data, None  # expat skips a UTF-8 mark
            return _recode(data[len(bom):], [name], None, wide=True)
    for pattern, name in _SNIFF:
        if head.startswith(pattern):
            return _recode(data, [name], None, wide=True)
    stripped = data.lstrip()[:1]
    if stripped in (b"{", b"["):  # JSON Feed: UTF-8 by RFC 8259; else the HTTP charset, else Windows-1252
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return _recode(data, [charset, "cp1252"], "JSON Feed is not UTF-8", json=True)
        return data, None
    m = _DECL.match(data[:512])
    declared = m.group(1).decode("ascii").lower() if m else None
    if declared in _NATIVE or (declared is None and charset in (None, *_UTF8)):
        return data, None  # the fast path: the parser reads it as it is
    note = None
    if declared and _canonical(declared) is None:
        note = f"declared encoding {declared!r} is unknown"
    if declared is None and _single_byte(charset):
        # a server's default "ISO-8859-1" is often wrong: valid UTF-8 is taken as UTF-8
        return _recode(data, ["utf-8", charset, "cp1252"], None)
    return _recode(data, [declared, charset, "utf-8", "cp1252"], note)


def _single_byte(name: str | None) -> bool:
    codec = _canonical(name) or ""
    return codec.startswith(("latin", "iso8859", "cp125", "koi8", "mac-"))


def _recode(data: bytes, candidates: list[str | None], note: str | None, *, json: bool = False, wide: bool = False) -> tuple[bytes, str | None]:
    tried: list[str] = []
    for name in candidates:
        codec = _canonical(name)
        if codec is None or codec in tried or (not wide and codec.startswith(("utf-16", "utf-32"))):
            continue  # unknown, tried, or a wide encoding the bytes plainly are not in
        tried.append(codec)
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if not json:
            text = _DECL_TEXT.sub("", text, count=1)
        if len(tried) > 1 or note:
            note = f"{note + '; ' if note else ''}read as {codec}"
        return text.encode("utf-8"), note
    # nothing decodes cleanly: Windows-1252 decodes every byte but five; keep what can be read
    text = data.decode("cp1252", errors="replace")
    if not json:
        text = _DECL_TEXT.sub("", text, count=1)
    return text.encode("utf-8"), f"{note + '; ' if note else ''}no encoding decodes it cleanly: read as cp1252 with replacement characters"


__all__ = ["charset_of", "to_parser_bytes"]
