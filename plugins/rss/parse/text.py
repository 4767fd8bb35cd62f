"""Reading text out of feed elements: plain, escaped HTML, inline XHTML, base64;
authors written as one string; relative links."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

from .model import Entry
from .namespaces import XHTML, XML

XML_BASE = f"{{{XML}}}base"
XML_LANG = f"{{{XML}}}lang"

# C1 controls where Windows-1252 has punctuation: feeds that meant &#147; (a curly
# quote) get U+0093 from an XML parser; browsers, and feedparser, show the quote
_C1 = re.compile("[\x80-\x9f]")
_CP1252 = {c: bytes([c]).decode("cp1252", "ignore") or chr(c) for c in range(0x80, 0xA0)}


_UTF8_AS_LATIN1 = re.compile("[\xc2-\xf4][\x80-\xbf]{1,3}")


def demoronize(text: str) -> str:
    """C1 control characters, as what they meant: UTF-8 bytes read as Latin-1 (``â\x80¦``
    is ``…``: only a run holding a C1 control, which text never has, is re-read), then
    Windows-1252 punctuation (``\x93`` is ``“``)."""
    if not _C1.search(text):
        return text

    def reread(m: re.Match[str]) -> str:
        run = m.group(0)
        if not _C1.search(run):
            return run
        try:
            return run.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return run

    return _UTF8_AS_LATIN1.sub(reread, text).translate(_CP1252)


def text_of(el: Element | None) -> str | None:
    """An element's own text, stripped (``None`` when empty)."""
    if el is None:
        return None
    t = demoronize(el.text or "").strip()  # first: U+0085 (an ellipsis in Windows-1252) is whitespace to strip()
    return t or None


def inner_xml(el: Element) -> str:
    """The markup inside ``el`` as HTML: children serialized without namespace
    prefixes (inline XHTML, Atom 0.3 ``mode="xml"``), iteratively (no recursion limit)."""
    out: list[str] = [html.escape(el.text or "", quote=False)]
    stack: list[tuple[Element, bool]] = [(child, False) for child in reversed(list(el))]
    while stack:
        node, closing = stack.pop()
        tag = node.tag.rsplit("}", 1)[-1] if isinstance(node.tag, str) else ""
        if closing:
            out.append(f"</{tag}>" + html.escape(node.tail or "", quote=False))
            continue
        if not tag:  # a comment or processing instruction
            out.append(html.escape(node.tail or "", quote=False))
            continue
        attrs = "".join(f' {k.rsplit("}", 1)[-1]}="{html.escape(v)}"' for k, v in node.attrib.items() if not k.startswith(f"{{{XML}}}"))
        out.append(f"<{tag}{attrs}>" + html.escape(node.text or "", quote=False))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(node)))
    return demoronize("".join(out).strip())


def content_of(el: Element | None, base: str | None = None, default: str = "html") -> str | None:
    """The HTML of a content-like element, whatever its ``type`` (Atom: text, html,
    xhtml or a MIME type) and ``mode`` (Atom 0.3: xml, escaped, base64). Plain text
    comes back escaped, so it reads as text; relative links are made absolute against
    ``base`` (``xml:base`` of the element, else the one given). ``default`` is the
    type of an element that names none: ``html`` for RSS, ``text`` for Atom constructs."""
    if el is None:
        return None
    explicit = (el.get("type") or "").strip().lower()
    kind = explicit or default
    mode = (el.get("mode") or "").strip().lower()
    base = resolve(base, el.get(XML_BASE))
    if kind and "/" in kind and not (kind.startswith("text/") or kind.endswith(("+xml", "/xml"))) and not len(el):
        mode = "base64"  # RFC 4287 4.1.3.3: other media types are Base64-encoded
    if mode == "base64":
        try:
            raw = base64.b64decode((el.text or "").strip(), validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
        value = html.escape(raw) if kind in ("text", "text/plain") else raw
    elif mode == "xml" or kind in ("xhtml", "application/xhtml+xml") or len(el):
        value = inner_xml(el)  # child elements are markup, whatever the type says
    else:
        value = demoronize(el.text or "").strip()
        if kind in ("text", "text/plain") and mode != "escaped":
            value = html.escape(value, quote=False)
    if not value:
        return None
    return absolutize(value, base) if base else value


def resolve(base: str | None, ref: str | None) -> str | None:
    """``ref`` (an ``xml:base`` or a link) against ``base``."""
    if not ref:
        return base
    ref = ref.strip()
    return urljoin(base, ref) if base else ref


_LINKED = re.compile(r"""(\s(?:href|src|cite|poster|background)\s*=\s*)(["'])([^"']*)\2""", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//|#)")


def absolutize(markup: str, base: str) -> str:
    """Relative ``href``/``src`` URLs in HTML made absolute against ``base``."""
    if "=" not in markup:
        return markup

    def fix(m: re.Match[str]) -> str:
        url = html.unescape(m.group(3)).strip()
        if not url or _ABSOLUTE.match(url):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{html.escape(urljoin(base, url))}{m.group(2)}"

    return _LINKED.sub(fix, markup)


_EMAIL = re.compile(r"(?:mailto:)?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)")


def split_author(value: str | None) -> tuple[str | None, str | None]:
    """(name, email) of an author written as one string: ``Name <a@b>``, ``a@b (Name)``,
    ``Name (a@b)``, ``a@b``, ``Name``."""
    if not value:
        return None, None
    value = demoronize(value.strip())
    m = _EMAIL.search(value)
    if m is None:
        return value or None, None
    rest = (value[: m.start()] + value[m.end() :]).strip()
    rest = re.sub(r"^[\s(<\"']+|[\s)>\"']+$", "", rest.replace("()", "").replace("<>", "")).strip()
    return rest or None, m.group(1)


def each(items: Iterable[Any], build: Callable[..., Entry], *args: Any) -> Iterator[Entry]:
    """``build(item, *args)`` for each item; an item that cannot be built (nested
    too deeply, say) becomes an :class:`Entry` carrying the error, not a failed feed."""
    for item in items:
        try:
            yield build(item, *args)
        except Exception as exc:  # noqa: BLE001 - one hostile item never fails the document
            yield Entry(native_id=None, raw=item if isinstance(item, Element) else _json_bytes(item), error=f"{type(exc).__name__}: {str(exc)[:300]}")


def _json_bytes(item: Any) -> bytes | None:
    try:
        return json.dumps(item, ensure_ascii=False).encode()
    except (ValueError, TypeError, RecursionError):
        return None


__all__ = ["XHTML", "XML_BASE", "XML_LANG", "absolutize", "content_of", "demoronize", "each", "inner_xml", "resolve", "split_author", "text_of"]
