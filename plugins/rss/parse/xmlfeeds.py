"""RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and CDF documents, read from an ElementTree.

Namespaces are canonical by the time these run (:mod:`.namespaces`). Each item
gathers what any of the formats' elements and extensions say: Dublin Core and
DC Terms, Atom elements inside RSS, iTunes, Media RSS, content:encoded, inline
XHTML bodies, RFC 4685 threading, slash and wfw comments; ``xml:base`` makes
links and links in content absolute.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

from .dates import parse_date
from .model import Entry, Feed, FeedError
from .namespaces import ATOM, ATOM03, CONTENT, DC, DCTERMS, ITUNES, MEDIA, RDF, RSS1, SLASH, THR, WFW, XHTML
from .text import XML_BASE, XML_LANG, content_of, demoronize, each, inner_xml, resolve, split_author, text_of

A, A03, D, DT, C, T, S, W, M, I, R1, X = (f"{{{u}}}" for u in (ATOM, ATOM03, DC, DCTERMS, CONTENT, THR, SLASH, WFW, MEDIA, ITUNES, RSS1, XHTML))
_IN_REPLY_TO = re.compile(r"^\s*<p>\s*In reply to <a href=\"([^\"]+)\"", re.IGNORECASE)  # WordPress nested comments


def _first(el: Element, *tags: str) -> Element | None:
    for tag in tags:
        found = el.find(tag)
        if found is not None:
            return found
    return None


def _first_text(el: Element, *tags: str) -> str | None:
    for tag in tags:
        value = text_of(el.find(tag))
        if value:
            return value
    return None


def _lang(value: str | None) -> str | None:
    return value.strip().replace("_", "-") if value and value.strip() else None


def _when(el: Element, *tags: str) -> object:
    for tag in tags:
        value = parse_date(text_of(el.find(tag)))
        if value is not None:
            return value
    return None


def _atom_person(person: Element | None, ns: str) -> tuple[str | None, str | None, str | None]:
    """(name, email, URL) of an Atom person (0.3 says ``url``, some feeds ``homepage``)."""
    if person is None:
        return None, None, None
    name = text_of(person.find(f"{ns}name"))
    email = text_of(person.find(f"{ns}email"))
    if not name and not email and not len(person):
        name, email = split_author(text_of(person))
    uri = _first_text(person, f"{ns}uri", f"{ns}url", f"{ns}homepage")
    return name, email, uri


def _tags(item: Element) -> list[str]:
    out: list[str] = []
    for c in item.findall("category"):
        out.append(text_of(c) or "")
    for c in item.findall(f"{D}subject"):
        out.append(text_of(c) or "")
    for ns in (A, A03):
        for c in item.findall(f"{ns}category"):
            out.append(c.get("term") or c.get("label") or text_of(c) or "")
    for c in item.iter(f"{I}category"):
        out.append(c.get("text") or "")
    for c in item.findall(f"{M}category"):
        out.append(text_of(c) or "")
    keywords = text_of(item.find(f"{I}keywords"))
    if keywords:
        out.extend(k.strip() for k in keywords.split(","))
    seen: dict[str, None] = {}
    for t in out:
        t = t.strip()
        if t:
            seen.setdefault(t, None)
    return list(seen)


# RSS 0.9x / 2.0 -----------------------------------------------------------------
def read_rss(root: Element, base: str | None) -> Feed:
    channel = root.find("channel")
    if channel is None:
        msg = "RSS document has no <channel>"
        raise FeedError(msg)
    base = resolve(resolve(base, root.get(XML_BASE)), channel.get(XML_BASE))
    language = _lang(_first_text(channel, "language", f"{D}language") or channel.get(XML_LANG) or root.get(XML_LANG))
    link = _first_text(channel, "link")
    feed = Feed(format=f"rss{root.get('version', '')}", title=_first_text(channel, "title", f"{D}title"), link=resolve(base, link) if link else None, language=language, generator=_first_text(channel, "generator"))
    for al in channel.findall(f"{A}link"):
        if al.get("rel") == "self":
            feed.self_url = al.get("href")
        elif al.get("rel", "alternate") == "alternate" and feed.link is None:
            feed.link = resolve(base, al.get("href"))
    items = channel.findall("item") or root.findall("item")  # RSS 0.9x with items beside the channel
    feed.entries.extend(each(items, _rss_item, base, language))
    return feed


def _rss_item(item: Element, base: str | None, language: str | None) -> Entry:
    base = resolve(base, item.get(XML_BASE))
    guid_el = item.find("guid")
    guid = text_of(guid_el) or text_of(item.find("id"))  # Atom's names without a namespace, as some feeds write
    link_el = item.find("link")
    link = text_of(link_el) or (link_el.get("href") if link_el is not None and link_el.get("rel", "alternate") == "alternate" else None)
    if not link:
        for al in item.findall(f"{A}link"):
            if al.get("rel", "alternate") == "alternate" and al.get("href"):
                link = al.get("href")
                break
    link = resolve(base, link) if link else None
    if not link and guid and guid.lower().startswith(("http://", "https://")) and guid_el is not None and (guid_el.get("isPermaLink") or "true").lower() != "false":
        link = guid  # a permalink guid is the item's link (RSS 2.0)
    name, email = split_author(_first_text(item, "author", f"{D}creator", f"{D}author", f"{I}author"))
    uri = None
    atom_author = item.find(f"{A}author")
    if atom_author is not None:
        a_name, a_email, uri = _atom_person(atom_author, A)
        name, email = name or a_name, email or a_email
    if name and not email and item.find("author") is not None:
        # "Name" in <author> with the address in dc:creator, or the other way round
        other = split_author(_first_text(item, f"{D}creator", f"{D}author"))
        email = other[1]
    content_el = _first(item, f"{C}encoded", f"{X}body", "body", "fullitem", f"{A}content")
    summary_el = _first(item, "summary", f"{A}summary")
    description_el = _first(item, "description", f"{D}description", f"{I}summary")
    if summary_el is not None and description_el is not None and content_el is None:
        # both: the first summarizes, the second is the text (as feedparser reads them)
        children = list(item)
        if children.index(description_el) < children.index(summary_el):
            summary_el, description_el = description_el, summary_el
        content_el = description_el
    e = Entry(
        native_id=guid or link,
        link=link,
        title=_first_text(item, "title", f"{D}title", f"{A}title", f"{M}title", f"{M}group/{M}title"),
        content_html=content_of(content_el, base),
        summary_html=content_of(summary_el if summary_el is not None else description_el, base),
        author_name=name,
        author_email=email,
        author_uri=resolve(base, uri) if uri else None,
        categories=_tags(item),
        published=_when(item, "pubDate", f"{D}date", f"{DT}issued", f"{DT}created", f"{A}published", f"{A}issued", "published"),  # type: ignore[arg-type]
        updated=_when(item, f"{DT}modified", f"{A}updated", f"{A}modified", "updated"),  # type: ignore[arg-type]
        language=_lang(item.get(XML_LANG) or (content_el.get(XML_LANG) if content_el is not None else None)) or language,
        raw=item,
    )
    reply = item.find(f"{T}in-reply-to")
    if reply is not None:
        e.in_reply_to = reply.get("ref") or reply.get("href")
        e.in_reply_to_href = reply.get("href")
    e.comments_feed = text_of(item.find(f"{W}commentRss"))
    m = _IN_REPLY_TO.search(e.content_html or "")
    if m:
        e.content_reply_to = m.group(1)
    comments = text_of(item.find(f"{S}comments"))
    if comments and comments.isdigit():
        e.comments = int(comments)
    for enc in item.findall("enclosure"):
        if enc.get("url"):
            e.enclosures.append({"url": resolve(base, enc.get("url")), "media_type": enc.get("type"), "size": int(enc.get("length")) if (enc.get("length") or "").isdigit() else None})  # type: ignore[arg-type]
    for enc in (*item.findall("link"), *item.findall(f"{A}link")):
        if enc.get("rel") == "enclosure" and enc.get("href"):
            e.enclosures.append({"url": resolve(base, enc.get("href")), "media_type": enc.get("type"), "size": int(enc.get("length")) if (enc.get("length") or "").isdigit() else None})  # type: ignore[arg-type]
    return e


# RSS 1.0 (RDF) and 0.90 --------------------------------------------------------------
def read_rdf(root: Element, base: str | None) -> Feed:
    channel = root.find(f"{R1}channel")
    base = resolve(base, root.get(XML_BASE))
    feed = Feed(format="rss1.0")
    if channel is not None:
        feed.title = _first_text(channel, f"{R1}title", f"{D}title")
        feed.link = _first_text(channel, f"{R1}link")
        feed.language = _lang(_first_text(channel, f"{D}language") or root.get(XML_LANG))
    items = root.findall(f"{R1}item") or (channel.findall(f"{R1}item") if channel is not None else [])
    feed.entries.extend(each(items, _rdf_item, base, feed.language))
    return feed


def _rdf_item(item: Element, base: str | None, language: str | None) -> Entry:
    base = resolve(base, item.get(XML_BASE))
    link = text_of(item.find(f"{R1}link"))
    link = resolve(base, link) if link else None
    name, email = split_author(_first_text(item, f"{D}creator", f"{D}author"))
    return Entry(
        native_id=item.get(f"{{{RDF}}}about") or link,
        link=link,
        title=_first_text(item, f"{R1}title", f"{D}title"),
        content_html=content_of(_first(item, f"{C}encoded", f"{X}body"), base),
        summary_html=content_of(_first(item, f"{R1}description", f"{D}description"), base),
        author_name=name,
        author_email=email,
        categories=_tags(item),
        published=_when(item, f"{D}date", f"{DT}issued", f"{DT}created"),  # type: ignore[arg-type]
        updated=_when(item, f"{DT}modified"),  # type: ignore[arg-type]
        language=_lang(item.get(XML_LANG)) or language,
        raw=item,
    )


# Atom 1.0 and 0.3 ---------------------------------------------------------------------
def read_atom(root: Element, ns: str, base: str | None) -> Feed:
    """Atom 1.0 (``ns`` ATOM), 0.3 and its drafts (ATOM03), or an Atom-shaped
    document in no namespace (``ns`` empty), as feedparser reads it too."""
    p = f"{{{ns}}}" if ns else ""
    base = resolve(base, root.get(XML_BASE))
    feed = Feed(format="atom1.0" if ns == ATOM else ("atom0.3" if ns else "atom"), title=_atom_text(root.find(f"{p}title")), generator=text_of(root.find(f"{p}generator")))
    feed.language = _lang(root.get(XML_LANG))
    for link in root.findall(f"{p}link"):
        rel = link.get("rel", "alternate")
        if rel == "self":
            feed.self_url = link.get("href")
        elif rel == "alternate" and feed.link is None:
            feed.link = resolve(base, link.get("href"))
    feed_id = text_of(root.find(f"{p}id"))
    if feed.link is None and feed_id and feed_id.lower().startswith(("http://", "https://")):
        feed.link = feed_id
    feed_author = root.find(f"{p}author")
    feed.entries.extend(each(root.findall(f"{p}entry"), _atom_entry, p, feed_author, base, feed.language))
    return feed


def _atom_text(el: Element | None) -> str | None:
    """A title-like Atom construct as HTML (text escaped, so it reads as text)."""
    return content_of(el, default="text")


def _atom_entry(entry: Element, p: str, feed_author: Element | None, base: str | None, language: str | None) -> Entry:
    base = resolve(base, entry.get(XML_BASE))
    link = None
    enclosures: list[dict] = []
    comments_feed = comments = None
    for l in entry.findall(f"{p}link"):  # noqa: E741
        rel = l.get("rel", "alternate")
        target = l.get("href") or text_of(l)  # some feeds put the URL in the element's text
        href = resolve(resolve(base, l.get(XML_BASE)), target) if target else None
        if href is None:
            continue
        if rel == "alternate" and link is None:
            link = href
        elif rel == "enclosure":
            enclosures.append({"url": href, "media_type": l.get("type"), "size": int(l.get("length")) if (l.get("length") or "").isdigit() else None})  # type: ignore[arg-type]
        elif rel == "replies" and l.get("type", "").endswith(("atom+xml", "rss+xml")):
            comments_feed = href
            if (l.get(f"{T}count") or "").isdigit():
                comments = int(l.get(f"{T}count"))  # type: ignore[arg-type]
    native = text_of(entry.find(f"{p}id"))
    if link is None and native and native.lower().startswith(("http://", "https://")):
        link = native
    source = entry.find(f"{p}source")
    author = entry.find(f"{p}author")
    if author is None and source is not None:
        author = source.find(f"{p}author")
    if author is None:
        author = feed_author
    name, email, uri = _atom_person(author, p)
    if name is None and email is None:
        name, email = split_author(_first_text(entry, f"{D}creator", f"{D}author"))
    content_el = entry.find(f"{p}content")
    e = Entry(
        native_id=native or link,
        link=link,
        title=_atom_text(entry.find(f"{p}title")) or _first_text(entry, f"{D}title", f"{M}title", f"{M}group/{M}title"),
        content_html=content_of(content_el, base, "text"),
        summary_html=content_of(entry.find(f"{p}summary"), base, "text") or content_of(_first(entry, f"{M}group/{M}description", f"{M}description"), base, "text"),
        author_name=name,
        author_email=email,
        author_uri=resolve(base, uri) if uri else None,
        categories=_tags(entry),
        published=_when(entry, f"{p}published", f"{p}issued", f"{p}created", f"{D}date", f"{DT}issued"),  # type: ignore[arg-type]
        updated=_when(entry, f"{p}updated", f"{p}modified", f"{DT}modified"),  # type: ignore[arg-type]
        language=_lang(entry.get(XML_LANG) or (content_el.get(XML_LANG) if content_el is not None else None)) or language,
        comments_feed=comments_feed,
        comments=comments,
        enclosures=enclosures,
        raw=entry,
    )
    reply = entry.find(f"{T}in-reply-to")
    if reply is not None:
        e.in_reply_to = reply.get("ref")
        e.in_reply_to_href = reply.get("href")
    count = entry.find(f"{T}total")
    if count is not None and (count.text or "").strip().isdigit():
        e.comments = int(count.text.strip())  # type: ignore[union-attr]
    return e


# CDF (Microsoft's Channel Definition Format) --------------------------------------------
def read_cdf(root: Element, base: str | None) -> Feed:
    def child(el: Element, name: str) -> Element | None:
        return next((c for c in el if isinstance(c.tag, str) and c.tag.upper() == name), None)

    def attr(el: Element, name: str) -> str | None:
        return next((v for k, v in el.attrib.items() if k.upper() == name), None)

    base = resolve(resolve(base, attr(root, "BASE")), root.get(XML_BASE))
    feed = Feed(format="cdf", title=text_of(child(root, "TITLE")), link=resolve(base, attr(root, "HREF")))
    items = [el for el in root.iter() if isinstance(el.tag, str) and el.tag.upper() == "ITEM"]

    def build(item: Element) -> Entry:
        href = resolve(resolve(base, item.get(XML_BASE)), attr(item, "HREF"))
        abstract = child(item, "ABSTRACT")
        return Entry(
            native_id=href,
            link=resolve(base, href) if href else None,
            title=text_of(child(item, "TITLE")),
            summary_html=content_of(abstract, base) if abstract is not None and (abstract.text or len(abstract)) else None,
            updated=parse_date(attr(item, "LASTMOD")),
            raw=item,
        )

    feed.entries.extend(each(items, build))
    return feed


__all__ = ["demoronize", "inner_xml", "read_atom", "read_cdf", "read_rdf", "read_rss"]
