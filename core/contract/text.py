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

#: Tags kept by :func:`sanitize_html`: feedparser's allow-list of safe elements
#: (sanitizer.py, ``acceptable_elements``) without its form controls (form, input,
#: button, select, option, optgroup, textarea, keygen, label, fieldset, legend,
#: datalist, output: a CRM note must not carry a phishing form) and without the
#: elements no browser knows any more (command, datagrid, event-source, m, multicol,
#: nextid, sound, spacer, dialog). Plus HTML5's mark, wbr, bdi, bdo, picture.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "area", "article", "aside", "audio", "b", "bdi", "bdo", "big",
        "blockquote", "br", "canvas", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
        "details", "dfn", "dir", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li", "map", "mark", "menu",
        "meter", "nav", "noscript", "ol", "p", "picture", "pre", "progress", "q", "rp", "rt", "ruby", "s",
        "samp", "section", "small", "source", "span", "strike", "strong", "sub", "summary", "sup", "table",
        "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "video", "wbr",
    }
)
#: Attributes kept, per tag ("*": on every tag): feedparser's safe presentational and
#: link attributes. Left out on purpose: ``style`` (CSS can exfiltrate and overlay),
#: ``id``/``name`` (DOM clobbering in the CRM's page), event handlers, ``rel`` (set to
#: noopener noreferrer nofollow on every link), ``action``/``formaction``.
ALLOWED_ATTRIBUTES = {
    "*": {"title", "lang", "dir", "class", "align", "valign"},
    "a": {"href", "hreflang", "type"},
    "area": {"href", "alt", "shape", "coords", "nohref"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace", "longdesc", "usemap", "ismap"},
    "audio": {"src", "controls", "loop", "preload"},
    "video": {"src", "controls", "loop", "preload", "poster", "width", "height"},
    "source": {"src", "type", "media", "srcset", "sizes"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "width", "bgcolor", "frame", "rules"},
    "col": {"span", "width", "char", "charoff"},
    "colgroup": {"span", "width", "char", "charoff"},
    "td": {"colspan", "rowspan", "headers", "scope", "abbr", "axis", "nowrap", "width", "height", "bgcolor"},
    "th": {"colspan", "rowspan", "headers", "scope", "abbr", "axis", "nowrap", "width", "height", "bgcolor"},
    "tr": {"bgcolor"},
    "font": {"color", "face", "size"},
    "hr": {"noshade", "size", "width"},
    "map": {"name"},
    "meter": {"value", "min", "max", "low", "high", "optimum"},
    "progress": {"value", "max"},
    "details": {"open"},
    "bdo": {"dir"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "ftp", "ftps", "tel"})

_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "blockquote", "pre", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "dl", "section", "article",
        "header", "footer",
    }
)


#: what nh3 would rewrite in a fragment without tags: a fragment with none of these is safe as it is
_MARKUP = re.compile("[<>&\u00a0\r\x00\ufeff\ud800-\udfff]")
#: nh3 cleaners, built once per process: building ammonia's allow-lists was two thirds
#: of a feed entry's sanitising when they were passed to ``nh3.clean`` on every call
_CLEANERS: dict[str, Any] = {}


def _cleaner(kind: str) -> Any:
    cleaner = _CLEANERS.get(kind)
    if cleaner is None:
        if kind == "safe":
            cleaner = nh3.Cleaner(
                tags=set(ALLOWED_TAGS),
                attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
                url_schemes=set(URL_SCHEMES),
                link_rel="noopener noreferrer nofollow",
                strip_comments=True,
            )
        else:  # "text": every tag stripped, the contents of these dropped
            cleaner = nh3.Cleaner(tags=set(), clean_content_tags={"script", "style", "template", "noscript", "title", "head"}, strip_comments=True)
        _CLEANERS[kind] = cleaner
    return cleaner


def sanitize_html(fragment: str) -> str:
    """Return ``fragment`` with everything unsafe removed (nh3/ammonia)."""
    if not fragment:
        return ""
    if _MARKUP.search(fragment) is None:
        return fragment  # plain text: nothing to sanitise (nh3 would return it unchanged)
    return str(_cleaner("safe").clean(fragment))


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
    stripped = str(_cleaner("text").clean(marked))
    return normalize_text(html.unescape(stripped))


def normalize_text(text: str) -> str:
    """Collapse horizontal whitespace and blank-line runs; strip the ends."""
    # each regex runs only where it has something to change: a single space is left as
    # it is, so most texts need none of them (the three subs were 25 µs a feed entry)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text or "\xa0" in text:
        text = _SPACES.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _EDGES.sub("\n", text)
    if "\n\n\n" in text:
        text = _NEWLINES.sub("\n\n", text)
    return text.strip()


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





_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralize_formula(value: str) -> str:
    """Make a CSV cell safe to open in a spreadsheet (OWASP CSV injection, ASVS 1.2.10).

    NUL characters are removed. A cell whose first character is ``=``, ``+``,
    ``-``, ``@``, tab, carriage return or line feed, also after leading spaces or
    double quotes (``"=HYPERLINK(...)``), is prefixed with a single quote, so
    spreadsheets show it as text instead of evaluating it. That includes handles
    such as ``@acme``: a spreadsheet reads them as formulas too (``#NAME?``), and
    OWASP's advice is to escape every such cell. A plain number (``-0.9412``,
    ``+3``, ``1e5``) is left alone: it cannot run anything and a numeric column
    must stay numeric. A cell that already starts with the quote is left as it is.
    """
    if not value:
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    first = value.lstrip(' "')[:1] if value[:1] in (" ", '"') else value[:1]
    if first and first in _FORMULA_START[:4] or value[:1] in ("\t", "\r", "\n"):
        if first in ("+", "-") and _NUMBER.fullmatch(value):
            return value
        return "'" + value
    return value


_SAFE_SCHEMES = {"http", "https", "mailto", "ftp", "ftps", "news", "nntp", "tel", "xmpp", "irc", "ircs"}
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def safe_url(url: str | None) -> str | None:
    """``url``, or ``None`` when its scheme can run or carry code (``javascript:``,
    ``vbscript:``, ``data:``, any scheme not known to be a plain link). Relative
    URLs (no scheme) pass. Control characters and spaces that browsers skip
    (``java\tscript:``) do not hide a scheme."""
    if not url:
        return url
    probe = _URL_NOISE.sub("", url).lower()
    head = re.match(r"([a-z][a-z0-9+.-]*):", probe)
    if head is None:
        return url
    if head.group(1) in _SAFE_SCHEMES:
        return url
    return None
__all__ = ["html_to_text", "neutralize_formula", "normalize_text", "safe_url", "sanitize_html", "truncate", "unescape"]
