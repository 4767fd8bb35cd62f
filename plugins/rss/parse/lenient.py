"""Ill-formed documents: the common repairs, then feedparser's lenient parser."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .model import Entry, Feed

_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_NAMED = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_BARE_AMP = re.compile(rb"&(?!#?[A-Za-z0-9]+;)")


def repair(data: bytes) -> bytes:
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


def parse_lenient(data: bytes) -> Feed | None:
    """What feedparser's lenient parser reads (``None`` when it finds no feed)."""
    import calendar

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

    def when(e: dict, key: str) -> datetime | None:
        st = e.get(key)
        return datetime.fromtimestamp(calendar.timegm(st), UTC) if st else None

    for e in parsed.entries:
        author = e.get("author_detail") or {}
        content = e.get("content") or []
        feed.entries.append(
            Entry(
                native_id=e.get("id") or e.get("link"),
                link=e.get("link"),
                title=e.get("title"),
                content_html=content[0].get("value") if content else None,
                summary_html=e.get("summary"),
                author_name=author.get("name") or e.get("author"),
                author_email=author.get("email"),
                author_uri=author.get("href"),
                categories=[t.get("term") for t in e.get("tags", []) if t.get("term")],
                published=when(e, "published_parsed"),
                updated=when(e, "updated_parsed"),
                comments_feed=e.get("wfw_commentrss"),
                raw=repr(dict(e)).encode()[:65536],
            )
        )
    return feed


__all__ = ["parse_lenient", "repair"]
