"""The ``rss`` source: feed files and directories of feed files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crmsync

from .parse import Entry, Feed, FeedError, parse_feed

PARSER_VERSION = "1"
FEED_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")
MAX_FEED_BYTES = 50 * 1024 * 1024


class RssSource(crmsync.Source):
    """Posts and comments from RSS 0.9x/1.0/2.0, Atom and JSON Feed documents."""

    name = "rss"
    channel = "feed"
    description = "Blog, forum and comment feeds (RSS, Atom, JSON Feed) from files and directories."
    config_schema = {
        "type": "object",
        "properties": {
            "feeds": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Feed files, or directories whose *.xml/*.rss/*.atom/*.json/*.rdf files are feeds.",
            },
            "max_bytes": {"type": "integer", "minimum": 1, "default": MAX_FEED_BYTES, "description": "Refuse feed documents larger than this."},
        },
        "required": ["feeds"],
    }

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for entry in self.config["feeds"]:
            if entry.startswith(("http://", "https://")):
                msg = f"feed {entry!r}: fetching feeds over HTTP is not available in this version; save the feed to a file"
                raise crmsync.ConfigError(msg, plugin=self.instance)
            p = self.resolve_path(entry)
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FEED_SUFFIXES))
            elif p.is_file():
                files.append(p)
            else:
                msg = f"feed path {p} does not exist"
                raise crmsync.FatalError(msg, plugin=self.instance)
        return files

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        seen: dict[str, str] = dict((state or {}).get("files", {}))
        for path in self._files():
            key = str(path)
            stat = path.stat()
            signature = f"{stat.st_size}:{stat.st_mtime_ns}"
            if seen.get(key) == signature:
                continue  # unchanged since the last committed run: costs no parsing
            if stat.st_size > self.config["max_bytes"]:
                yield self.reject(key, f"feed is {stat.st_size} bytes, over the {self.config['max_bytes']} byte limit")
            else:
                data = path.read_bytes()
                yield from self._parse(key, data)
            seen[key] = signature
            yield crmsync.Checkpoint({"files": dict(seen)})

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        yield from self._parse(ref.split("#", 1)[0], raw)

    def _parse(self, ref: str, data: bytes) -> Iterator[crmsync.Record]:
        try:
            feed = parse_feed(data)
        except FeedError as exc:
            yield self.reject(ref, str(exc), data)
            return
        scope = feed.self_url or feed.link or ref
        for n, entry in enumerate(feed.entries, 1):
            if not entry.native_id:
                yield self.reject(f"{ref}#item{n}", "item has neither guid/id nor link, so it cannot get a stable id", entry.raw)
                continue
            try:
                yield self._interaction(feed, entry, scope, ref)
            except ValueError as exc:
                yield self.reject(f"{ref}#item{n}", f"invalid item: {exc}", entry.raw)

    def _interaction(self, feed: Feed, e: Entry, scope: str, ref: str) -> crmsync.Interaction:
        author = None
        if e.author_name or e.author_email or e.author_uri:
            author = crmsync.Identity(
                name=e.author_name,
                emails=[e.author_email] if e.author_email else [],
                profile_urls=[e.author_uri] if e.author_uri else [],
            )
        parent = crmsync.make_interaction_id("feed", e.in_reply_to, scope) if e.in_reply_to else None
        body = e.content_html or e.summary_html
        return self.interaction(
            native_id=e.native_id,
            scope=scope,
            kind="comment" if parent else "post",
            url=e.link,
            title=crmsync.html_to_text(e.title) if e.title else None,
            body_html=body,
            summary=crmsync.html_to_text(e.summary_html) if e.summary_html and e.content_html else None,
            language=e.language or feed.language,
            published=e.published or e.updated,
            updated=e.updated,
            author=author,
            in_reply_to=parent,
            thread_id=parent,
            tags=e.categories,
            engagement={"comments": e.comments} if e.comments is not None else {},
            attachments=[crmsync.Attachment(**a) for a in e.enclosures],
            provenance=crmsync.Provenance(
                source_url=feed.self_url or ref,
                record_ref=ref,
                raw_hash=hashlib.sha256(e.raw).hexdigest(),
                parser=f"crmsync_rss/{feed.format}",
                parser_version=PARSER_VERSION,
            ),
        )
