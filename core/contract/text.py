"""Safe handling of untrusted text: HTML sanitizing and HTML-to-text.

Sanitizing uses nh3 (the Python binding of the Rust ``ammonia`` sanitizer):
scripts, event handlers, ``javascript:`` URLs, styles and unknown tags go;
links get ``rel="noopener noreferrer nofollow"``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import nh3

#: Tags kept by :func:`sanitize_html`: what a CRM note can show.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt",
        "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol",
        "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody",
        "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "blockquote", "pre", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "dl", "section", "article",
        "header", "footer",
    }
)


#: nh3's arguments, built once (a set per call was a tenth of a feed entry's sanitising)
_CLEAN_ARGS: dict[str, Any] = {}
#: what nh3 would rewrite in a fragment without tags: a fragment with none of these is safe as it is
_MARKUP = re.compile("[<>&\u00a0\r\x00\ufeff\ud800-\udfff]")


def sanitize_html(fragment: str) -> str:
    """Return ``fragment`` with everything unsafe removed (nh3/ammonia)."""
    if not fragment:
        return ""
    if _MARKUP.search(fragment) is None:
        return fragment  # plain text: nothing to sanitise (nh3 would return it unchanged)
    if not _CLEAN_ARGS:
        _CLEAN_ARGS.update(
            tags=set(ALLOWED_TAGS),
            attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
            url_schemes=set(URL_SCHEMES),
            link_rel="noopener noreferrer nofollow",
            strip_comments=True,
        )
    return nh3.clean(fragment, **_CLEAN_ARGS)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_EDGES = re.compile(r" ?\n ?")
_NEWLINES = re.compile(r"\n{3,}")


_BLOCK_TAG = re.compile(r"</?(?:" + "|".join(sorted(_BLOCK)) + r")\b[^>]*>", re.IGNORECASE)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags dropped, blocks on their own lines.

    Script and style contents are dropped, entities decoded, runs of blank
    space collapsed. (nh3 strips the tags; a regex marks block boundaries.)
    """
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return normalize_text(fragment)
    marked = _BLOCK_TAG.sub("\n", fragment)
    stripped = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style", "template", "noscript", "title", "head"}, strip_comments=True)
    return normalize_text(html.unescape(stripped))


def normalize_text(text: str) -> str:
    """Collapse horizontal whitespace and blank-line runs; strip the ends."""
    out = _EDGES.sub("\n", _SPACES.sub(" ", text.replace("\r\n", "\n")))
    return _NEWLINES.sub("\n\n", out).strip()


def unescape(text: str) -> str:
    """Decode HTML character references (``&amp;`` and friends)."""
    return html.unescape(text)


def truncate(text: str | None, limit: int, marker: str = "…[truncated]") -> tuple[str | None, bool]:
    """Cut ``text`` to at most ``limit`` characters, ending with ``marker``.

    Returns the text and whether it was cut.
    """
    if text is None or len(text) <= limit:
        return text, False
    keep = max(0, limit - len(marker))
    return text[:keep] + marker, True





_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(value: str) -> str:
    """Make a CSV cell safe to open in a spreadsheet (OWASP CSV injection).

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is
    prefixed with a single quote, so spreadsheets show it as text instead of
    evaluating it.
    """
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value
__all__ = ["html_to_text", "neutralize_formula", "normalize_text", "sanitize_html", "truncate", "unescape"]
