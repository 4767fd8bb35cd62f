"""What a feed document is read into, before the rss source normalizes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element


class FeedError(ValueError):
    """The document cannot be read as a feed."""


class TruncatedFeed(FeedError):
    """The document ends before its root element (or JSON object) is closed: it was
    cut short in transfer or is still being written. Nothing in it may be trusted."""


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


__all__ = ["Entry", "Feed", "FeedError", "TruncatedFeed"]
