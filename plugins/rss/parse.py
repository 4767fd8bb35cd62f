"""Feed parsing: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed 1.0/1.1.

XML goes through defusedxml: entity declarations (billion laughs) and
external entities are refused, and nothing is ever fetched.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .encoding import to_parser_bytes

ATOM = "{http://www.w3.org/2005/Atom}"
ATOM03 = "{http://purl.org/atom/ns#}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
RSS1 = "{http://purl.org/rss/1.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
THR = "{http://purl.org/syndication/thread/1.0}"
SLASH = "{http://purl.org/rss/1.0/modules/slash/}"
WFW = "{http://wellformedweb.org/CommentAPI/}"
MEDIA = "{http://search.yahoo.com/mrss/}"


class FeedError(ValueError):
    """The document cannot be read as a feed."""


class TruncatedFeed(FeedError):
    """The document ends before its root element (or JSON object) is closed: it was
    cut short in transfer or is still being written. Nothing in it may be trusted."""


# expat's "no element found", "unclosed token", "partial character", "unclosed CDATA
# section": the input ended inside the document
_CUT_SHORT = {3, 5, 6, 20}


@dataclass
class Entry:
    """One feed item, before normalization."""

    native_id: str | None
    link: str | None = None
    title: str | None = None
    content_html: str | None = None
    summary_html: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    author_uri: str | None = None
    categories: list[str] = field(default_factory=list)
    published: datetime | None = None
    updated: datetime | None = None
    in_reply_to: str | None = None
    comments: int | None = None
    enclosures: list[dict[str, Any]] = field(default_factory=list)
    language: str | None = None
    comments_feed: str | None = None
    content_reply_to: str | None = None
    in_reply_to_href: str | None = None
    raw: bytes | Element | None = None
    #: Why the item could not be read (it goes to the quarantine); the other items are unaffected.
    error: str | None = None

    def raw_bytes(self) -> bytes:
        """The item's own XML/JSON, serialized only when needed (quarantine)."""
        if isinstance(self.raw, bytes):
            return self.raw
        if self.raw is None:
            return b""
        from xml.etree.ElementTree import tostring

        return tostring(self.raw, encoding="utf-8")


@dataclass
class Feed:
    """A parsed feed document."""

    format: str
    title: str | None = None
    link: str | None = None
    self_url: str | None = None
    language: str | None = None
    generator: str | None = None
    recovered: str | None = None
    entries: list[Entry] = field(default_factory=list)


_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)


def parse_feed(data: bytes, *, recover: bool = True, charset: str | None = None) -> Feed:
    """Parse a feed document; raise :class:`FeedError` with the reason.

    The encoding is found as feed readers find it (:mod:`.encoding`; ``charset``
    is the HTTP Content-Type's). Well-formed XML takes the fast path
    (ElementTree through defusedxml). A document that ends before its root is
    closed raises :class:`TruncatedFeed`: none of it is read, so a cut item never
    becomes a record. Any other ill-formed document is repaired (HTML named
    entities, bare ``&``, junk before the root) and, failing that, read by
    feedparser's lenient parser, as a mature reader would; ``Feed.recovered``
    then says how. Entity declarations are refused before any parser sees the document.
    """
    data, decoded = to_parser_bytes(data, charset)
    feed = _parse(data, recover)
    if decoded:
        feed.recovered = f"{decoded}; {feed.recovered}" if feed.recovered else decoded
    return feed


def _parse(data: bytes, recover: bool) -> Feed:
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return _parse_json_feed(data)
    if _ENTITY_DECL.search(data):
        msg = "refused unsafe XML: entity declarations (billion laughs, external entities) are not allowed"
        raise FeedError(msg)
    try:
        return _parse_xml(data)
    except ParseError as exc:
        _check_cut_short(exc)
        if not recover:
            msg = f"malformed XML: {exc}"
            raise FeedError(msg) from None
        first_error = str(exc)
    repaired = _repair(data)
    if repaired != data:
        try:
            feed = _parse_xml(repaired)
            feed.recovered = f"repaired ill-formed XML ({first_error})"
            return feed
        except ParseError as exc:
            _check_cut_short(exc)
    feed = _parse_lenient(data)
    if feed is None:
        msg = f"malformed XML: {first_error}"
        raise FeedError(msg)
    feed.recovered = f"read with feedparser's lenient parser ({first_error})"
    return feed


def _check_cut_short(exc: ParseError) -> None:
    if getattr(exc, "code", None) in _CUT_SHORT:
        msg = f"the document ends before its root element is closed ({exc}): cut short in transfer, or still being written"
        raise TruncatedFeed(msg) from None


def _parse_xml(data: bytes) -> Feed:
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        msg = f"refused unsafe XML ({type(exc).__name__}: entity declarations and external references are not allowed)"
        raise FeedError(msg) from None
    tag = root.tag
    if tag == "rss" or tag.endswith("}rss"):
        return _parse_rss(root)
    if tag == f"{RDF}RDF":
        return _parse_rdf(root)
    if tag in (f"{ATOM}feed", f"{ATOM03}feed"):
        return _parse_atom(root, ATOM if tag.startswith(ATOM) else ATOM03)
    msg = f"not a feed: root element is <{tag}>"
    raise FeedError(msg)


_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_NAMED = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_BARE_AMP = re.compile(rb"&(?!#?[A-Za-z0-9]+;)")


def _repair(data: bytes) -> bytes:
    """Common ill-formedness: HTML entities, bare ampersands, junk before the root."""
    import html.entities

    start = data.find(b"<")
    if start > 0:
        data = data[start:]

    def named(m: re.Match[bytes]) -> bytes:
        name = m.group(1).decode("ascii")
        if name in _XML_ENTITIES:
            return m.group(0)
        cp = html.entities.name2codepoint.get(name)
        return f"&#{cp};".encode() if cp else b"&amp;" + m.group(1) + b";"

    data = _NAMED.sub(named, data)
    return _BARE_AMP.sub(b"&amp;", data)


def _parse_lenient(data: bytes) -> Feed | None:
    import time

    import feedparser

    # bytes, never a URL or path: feedparser must not fetch anything itself
    parsed = feedparser.parse(data, resolve_relative_uris=False, sanitize_html=False)
    if not parsed.entries and not parsed.feed:
        return None
    f = parsed.feed
    feed = Feed(format=f"{parsed.version or 'unknown'}(lenient)", title=f.get("title"), link=f.get("link"), language=f.get("language"), generator=f.get("generator"))
    for link in f.get("links", []):
        if link.get("rel") == "self":
            feed.self_url = link.get("href")

    def when(key: str) -> datetime | None:
        st = e.get(key)
        return datetime.fromtimestamp(time.mktime(st) - time.timezone, UTC) if st else None

    for e in parsed.entries:
        author = e.get("author_detail") or {}
        content = e.get("content") or []
        entry = Entry(
            native_id=e.get("id") or e.get("link"),
            link=e.get("link"),
            title=e.get("title"),
            content_html=content[0].get("value") if content else None,
            summary_html=e.get("summary"),
            author_name=author.get("name") or e.get("author"),
            author_email=author.get("email"),
            author_uri=author.get("href"),
            categories=[t.get("term") for t in e.get("tags", []) if t.get("term")],
            published=when("published_parsed"),
            updated=when("updated_parsed"),
            comments_feed=e.get("wfw_commentrss"),
            raw=repr(dict(e)).encode()[:65536],
        )
        feed.entries.append(entry)
    return feed


# dates -------------------------------------------------------------------
_ISO_FIX = re.compile(r"(\.\d+)?([+-]\d\d)(\d\d)$")


def parse_date(value: str | None) -> datetime | None:
    """RFC 822/2822 and RFC 3339/ISO 8601 dates, as aware UTC datetimes."""
    if not value:
        return None
    value = value.strip()
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            dt = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            dt = _parse_date_lenient(value)
            if dt is None:
                return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _parse_date_lenient(value: str) -> datetime | None:
    """feedparser's date handlers cover the odd formats feeds use (W3C-DTF variants, Korean, Greek, ...)."""
    import calendar

    from feedparser.datetimes import _parse_date

    st = _parse_date(value)
    return datetime.fromtimestamp(calendar.timegm(st), UTC) if st else None


# XML helpers ---------------------------------------------------------------
def _text(el: Element | None) -> str | None:
    if el is None:
        return None
    txt = "".join(el.itertext()).strip()
    return txt or None


_ADDR = re.compile(r"^\s*([^\s()]+@[^\s()]+)\s*(?:\((.*)\))?\s*$")


def _rss_author(value: str | None) -> tuple[str | None, str | None]:
    """RSS ``<author>``: ``mail@example.com (Name)`` or just a name."""
    if not value:
        return None, None
    m = _ADDR.match(value)
    if m:
        return (m.group(2) or None), m.group(1)
    name, addr = email.utils.parseaddr(value)
    if addr and "@" in addr:
        return name or None, addr
    return value.strip(), None


# RSS 2.0 / 0.9x ------------------------------------------------------------
def _parse_rss(root: Element) -> Feed:
    channel = root.find("channel")
    if channel is None:
        msg = "RSS document has no <channel>"
        raise FeedError(msg)
    feed = Feed(format=f"rss{root.get('version', '')}", title=_text(channel.find("title")), link=_text(channel.find("link")), language=_text(channel.find("language")), generator=_text(channel.find("generator")))
    for link in channel.findall(f"{ATOM}link"):
        if link.get("rel") == "self":
            feed.self_url = link.get("href")
    feed.entries.extend(_each(channel.findall("item"), _rss_item))
    return feed


def _each(items: Any, build: Any, *args: Any) -> Any:
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


def _rss_item(item: Element) -> Entry:
    guid = _text(item.find("guid"))
    link = _text(item.find("link"))
    name, mail = _rss_author(_text(item.find("author")))
    creator = _text(item.find(f"{DC}creator"))
    e = Entry(
        native_id=guid or link,
        link=link,
        title=_text(item.find("title")),
        content_html=_text(item.find(f"{CONTENT}encoded")),
        summary_html=_text(item.find("description")),
        author_name=creator or name,
        author_email=mail,
        categories=[c for c in (_text(x) for x in item.findall("category")) if c],
        published=parse_date(_text(item.find("pubDate")) or _text(item.find(f"{DC}date"))),
        raw=item,
    )
    reply = item.find(f"{THR}in-reply-to")
    if reply is not None:
        e.in_reply_to = reply.get("ref") or reply.get("href")
        e.in_reply_to_href = reply.get("href")
    e.comments_feed = _text(item.find(f"{WFW}commentRss"))
    m = _IN_REPLY_TO.search(e.content_html or "")
    if m:
        e.content_reply_to = m.group(1)
    comments = _text(item.find(f"{SLASH}comments"))
    if comments and comments.isdigit():
        e.comments = int(comments)
    for enc in item.findall("enclosure"):
        e.enclosures.append({"url": enc.get("url"), "media_type": enc.get("type"), "size": int(enc.get("length")) if (enc.get("length") or "").isdigit() else None})
    return e


# WordPress comment feeds say "In reply to <a href="...#comment-N">" for nested replies
_IN_REPLY_TO = re.compile(r"^\s*<p>\s*In reply to <a href=\"([^\"]+)\"", re.IGNORECASE)


# RSS 1.0 (RDF) -------------------------------------------------------------
def _parse_rdf(root: Element) -> Feed:
    channel = root.find(f"{RSS1}channel")
    feed = Feed(format="rss1.0")
    if channel is not None:
        feed.title = _text(channel.find(f"{RSS1}title"))
        feed.link = _text(channel.find(f"{RSS1}link"))
    feed.entries.extend(_each(root.findall(f"{RSS1}item"), _rdf_item))
    return feed


def _rdf_item(item: Element) -> Entry:
    link = _text(item.find(f"{RSS1}link"))
    return Entry(
        native_id=item.get(f"{RDF}about") or link,
        link=link,
        title=_text(item.find(f"{RSS1}title")),
        content_html=_text(item.find(f"{CONTENT}encoded")),
        summary_html=_text(item.find(f"{RSS1}description")),
        author_name=_text(item.find(f"{DC}creator")),
        categories=[c for c in (_text(x) for x in item.findall(f"{DC}subject")) if c],
        published=parse_date(_text(item.find(f"{DC}date"))),
        raw=item,
    )


def _escaped(text: str | None) -> str | None:
    import html

    return html.escape(text) if text else None


# Atom ------------------------------------------------------------------------
def _atom_content(el: Element | None) -> str | None:
    if el is None:
        return None
    kind = el.get("type", "text")
    if kind == "xhtml":
        from xml.etree.ElementTree import tostring

        return "".join(tostring(child, encoding="unicode") for child in el) or None
    txt = el.text or ""
    if kind == "text":
        import html

        return html.escape(txt.strip()) or None
    return txt.strip() or None


def _parse_atom(root: Element, ns: str) -> Feed:
    feed = Feed(format="atom1.0" if ns == ATOM else "atom0.3", title=_text(root.find(f"{ns}title")), generator=_text(root.find(f"{ns}generator")))
    feed.language = root.get("{http://www.w3.org/XML/1998/namespace}lang")
    for link in root.findall(f"{ns}link"):
        rel = link.get("rel", "alternate")
        if rel == "self":
            feed.self_url = link.get("href")
        elif rel == "alternate" and feed.link is None:
            feed.link = link.get("href")
    feed_author = root.find(f"{ns}author")
    feed.entries.extend(_each(root.findall(f"{ns}entry"), _atom_entry, ns, feed_author))
    return feed


def _atom_entry(entry: Element, ns: str, feed_author: Element | None) -> Entry:
    link = None
    for l in entry.findall(f"{ns}link"):  # noqa: E741
        if l.get("rel", "alternate") == "alternate":
            link = l.get("href")
            break
    author = entry.find(f"{ns}author")
    if author is None:
        author = feed_author
    e = Entry(
        native_id=_text(entry.find(f"{ns}id")) or link,
        link=link,
        title=_text(entry.find(f"{ns}title")),
        content_html=_atom_content(entry.find(f"{ns}content")),
        summary_html=_atom_content(entry.find(f"{ns}summary")) or _escaped(_text(entry.find(f"{MEDIA}group/{MEDIA}description"))),
        author_name=_text(author.find(f"{ns}name")) if author is not None else None,
        author_email=_text(author.find(f"{ns}email")) if author is not None else None,
        author_uri=_text(author.find(f"{ns}uri")) if author is not None else None,
        categories=[c.get("term") for c in entry.findall(f"{ns}category") if c.get("term")],
        published=parse_date(_text(entry.find(f"{ns}published")) or _text(entry.find(f"{ns}issued"))),
        updated=parse_date(_text(entry.find(f"{ns}updated")) or _text(entry.find(f"{ns}modified"))),
        language=entry.get("{http://www.w3.org/XML/1998/namespace}lang"),
        raw=entry,
    )
    reply = entry.find(f"{THR}in-reply-to")
    if reply is not None:
        e.in_reply_to = reply.get("ref")
        e.in_reply_to_href = reply.get("href")
    count = entry.find(f"{THR}total")
    if count is not None and (count.text or "").strip().isdigit():
        e.comments = int(count.text.strip())
    for l in entry.findall(f"{ns}link"):  # noqa: E741
        if l.get("rel") == "replies" and l.get("type", "").endswith(("atom+xml", "rss+xml")):
            e.comments_feed = l.get("href")
            if (l.get(f"{THR}count") or "").isdigit():
                e.comments = int(l.get(f"{THR}count"))
        if l.get("rel") == "enclosure":
            e.enclosures.append({"url": l.get("href"), "media_type": l.get("type"), "size": int(l.get("length")) if (l.get("length") or "").isdigit() else None})
    return e


# JSON Feed -----------------------------------------------------------------
def _parse_json_feed(data: bytes) -> Feed:
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(data.rstrip()) or exc.msg.startswith("Unterminated string"):
            msg = f"the JSON document ends before it is closed ({exc}): cut short in transfer, or still being written"
            raise TruncatedFeed(msg) from None
        msg = f"malformed JSON: {exc}"
        raise FeedError(msg) from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"malformed JSON: {exc}"
        raise FeedError(msg) from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        msg = "not a JSON Feed: missing 'version' https://jsonfeed.org/version/1 or 1.1"
        raise FeedError(msg)
    feed = Feed(format="jsonfeed" + doc["version"].rsplit("/", 1)[-1], title=doc.get("title"), link=doc.get("home_page_url"), self_url=doc.get("feed_url"), language=doc.get("language"))
    feed_authors = doc.get("authors") or ([doc["author"]] if isinstance(doc.get("author"), dict) else [])
    items = [item for item in doc.get("items") or [] if isinstance(item, dict)]
    feed.entries.extend(_each(items, _json_item, feed_authors))
    return feed


def _json_item(item: dict[str, Any], feed_authors: list[Any]) -> Entry:
    authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else feed_authors)
    author = authors[0] if authors and isinstance(authors[0], dict) else {}
    content_html = item.get("content_html")
    if content_html is None and item.get("content_text") is not None:
        import html

        content_html = "<p>" + html.escape(str(item["content_text"])) + "</p>"
    native = item.get("id")
    e = Entry(
        native_id=str(native) if native not in (None, "") else item.get("url"),
        link=item.get("url"),
        title=item.get("title"),
        content_html=content_html,
        summary_html=item.get("summary"),
        author_name=author.get("name"),
        author_uri=author.get("url"),
        categories=[str(t) for t in item.get("tags") or []],
        published=parse_date(item.get("date_published")),
        updated=parse_date(item.get("date_modified")),
        language=item.get("language"),
        raw=json.dumps(item, ensure_ascii=False).encode(),
    )
    ext = item.get("_crmsync") or {}
    if isinstance(ext, dict) and ext.get("in_reply_to"):
        e.in_reply_to = ext["in_reply_to"]
    for att in item.get("attachments") or []:
        if isinstance(att, dict):
            e.enclosures.append({"url": att.get("url"), "media_type": att.get("mime_type"), "size": att.get("size_in_bytes")})
    return e
