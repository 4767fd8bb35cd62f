"""The ``rss`` source: feeds over HTTP(S) and from files, OPML lists, comment threads,
platform-aware authors and brand listening."""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import crmsync

from .encoding import charset_of
from .parse import Entry, Feed, FeedError, TruncatedFeed, parse_feed
from .platforms import author_of, detect_platform

PARSER_VERSION = "3"
FEED_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")
MAX_FEED_BYTES = 50 * 1024 * 1024
MAX_MATCHED_THREADS = 50_000
_WP_COMMENT_GUID = re.compile(r"^(.+\?p=\d+)#comment-(\d+)$")
_COMMENT_FRAGMENT = re.compile(r"#comment-(\d+)$")


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _site(url: str | None) -> str | None:
    """The host of an http(s) URL (the scope of a site's non-URI guids)."""
    if not url or not _is_url(url):
        return None
    return urlsplit(url).netloc.lower() or None


def _derived_id(e: Entry) -> str | None:
    """An id for an item without guid, id or link (forum, comment and old blog feeds):
    a hash of what identifies it in its feed (title, dates, author, text), scoped by
    the feed. The same item read again gets the same id; an edit of its title or text
    makes it a new interaction (there is nothing else to tie the two together)."""
    basis = [
        e.title, e.published.isoformat() if e.published else None, e.updated.isoformat() if e.updated else None, e.author_name, e.author_email,
        e.content_html or e.summary_html, sorted(x["url"] for x in e.enclosures if x.get("url")), e.categories,
    ]
    if not any(basis):
        return None
    return "sha256:" + hashlib.sha256(json.dumps(basis, ensure_ascii=False).encode()).hexdigest()


class RssSource(crmsync.Source):
    """Posts and comments from RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed 1.0/1.1."""

    name = "rss"
    channel = "feed"
    description = "Blog, forum, social and comment feeds (RSS, Atom, JSON Feed) over HTTP(S) or from files, with brand listening."
    config_schema = {
        "type": "object",
        "properties": {
            "feeds": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Feed URLs, feed files, or directories of feed files."},
            "opml": {"type": "array", "items": {"type": "string"}, "default": [], "description": "OPML subscription lists (files) whose xmlUrl outlines are feeds."},
            "concurrency": {"type": "integer", "minimum": 1, "default": 32, "description": "Feeds fetched at the same time."},
            "per_host": {"type": "integer", "minimum": 1, "default": 2, "description": "Requests at the same time to one host."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 20, "description": "Seconds to wait for a connection, and for each read of a response."},
            "deadline": {"type": "number", "exclusiveMinimum": 0, "default": 120, "description": "Seconds a whole response may take, however slowly the server trickles it (then retried)."},
            "max_bytes": {"type": "integer", "minimum": 1, "default": MAX_FEED_BYTES, "description": "Refuse feed documents larger than this (after decompression)."},
            "retries": {"type": "integer", "minimum": 1, "default": 4, "description": "Attempts per feed on 5xx, 429, timeouts and dropped connections."},
            "retry_max_wait": {"type": "number", "minimum": 0, "default": 30, "description": "Longest wait between attempts (seconds); caps Retry-After."},
            "follow_comments": {"type": "boolean", "default": True, "description": "Fetch wfw:commentRss / Atom replies feeds of posts (HTTP feeds only)."},
            "comment_window_days": {"type": "integer", "minimum": 0, "default": 30, "description": "Keep polling a post's comment feed this many days after the post (0: forever)."},
            "block_private_addresses": {"type": "boolean", "default": False, "description": "Refuse feed URLs (and redirects) that resolve to private or loopback addresses; turn on for URLs from untrusted input."},
            "ca_file": {"type": "string", "description": "CA bundle for servers with a private certificate authority."},
            "user_agent": {"type": "string", "description": "User-Agent header."},
            "listen": {
                "type": "object",
                "properties": {
                    "terms": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "string"}},
                            {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                        ],
                        "description": "Brand and product names (a list, or name = [aliases]).",
                    },
                    "exclude": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Phrases that drop an entry."},
                    "filter": {"type": "boolean", "default": False, "description": "Keep only entries that mention a term, and the comment threads under them."},
                },
                "additionalProperties": False,
                "default": {},
                "description": "Brand listening: matches are recorded as mentions.",
            },
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        listen = self.config.get("listen") or {}
        self.rules = crmsync.BrandRules(listen.get("terms") or (), listen.get("exclude") or ())
        self.filter = bool(listen.get("filter")) and self.rules.active
        self.filtered = 0

    # feed list ----------------------------------------------------------
    def _targets(self) -> tuple[list[str], list[Path]]:
        urls: list[str] = []
        files: list[Path] = []
        entries = list(self.config["feeds"])
        for opml in self.config["opml"]:
            entries.extend(self._opml(self.resolve_path(opml)))
        if not entries:
            msg = "no feeds configured: set 'feeds' (URLs, files, directories) or 'opml'"
            raise crmsync.ConfigError(msg, plugin=self.instance)
        seen: set[str] = set()  # a list's `in` made 100,000 feeds quadratic (tens of seconds)
        for entry in entries:
            if _is_url(entry):
                if entry not in seen:
                    seen.add(entry)
                    urls.append(entry)
                continue
            p = self.resolve_path(entry)
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FEED_SUFFIXES))
            elif p.is_file():
                files.append(p)
            else:
                msg = f"feed path {p} does not exist"
                raise crmsync.FatalError(msg, plugin=self.instance)
        return urls, files

    def preflight(self) -> list[str]:
        try:
            urls, files = self._targets()
        except crmsync.FatalError as exc:
            msg = f"key 'feeds': {exc.message}"
            raise crmsync.ConfigError(msg, plugin=self.instance) from None
        return [f"{len(urls)} feed URL(s), {len(files)} feed file(s)"]

    def _opml(self, path: Path) -> list[str]:
        import defusedxml.ElementTree as SafeET
        from defusedxml import DefusedXmlException

        try:
            root = SafeET.fromstring(path.read_bytes())
        except (OSError, DefusedXmlException, SafeET.ParseError) as exc:
            msg = f"cannot read OPML file {path}: {exc}"
            raise crmsync.FatalError(msg, plugin=self.instance) from None
        return [o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")]

    # reading ------------------------------------------------------------
    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        state = state or {}
        # one state dict, updated for a feed only after all of its records are
        # yielded and just before the checkpoint (the runner stores it with them)
        out: dict[str, Any] = {
            "files": dict(state.get("files", {})),
            "feeds": {k: dict(v) for k, v in state.get("feeds", {}).items()},
            "comment_feeds": dict(state.get("comment_feeds", {})),
            "matched": list(state.get("matched", [])),
        }
        self._matched = set(out["matched"])
        urls, files = self._targets()
        for path in files:
            key = str(path)
            mark = self.state_key(path)  # the bookmark's name for it: survives moving the project
            st = path.stat()
            signature = f"{st.st_size}:{st.st_mtime_ns}"
            if out["files"].get(mark, out["files"].get(key)) == signature:
                continue  # unchanged since the last committed run: costs no parsing
            if st.st_size > self.config["max_bytes"]:
                yield self.reject(key, f"feed is {st.st_size} bytes, over the {self.config['max_bytes']} byte limit")
            else:
                data = path.read_bytes()
                yield from self.guard(key, data, self._document(data, key, {}, out, http=False))
            out["files"].pop(key, None)  # a bookmark of 0.1 named it by its absolute path
            out["files"][mark] = signature
            yield crmsync.Checkpoint(out)
        if urls or out["comment_feeds"]:
            yield from self._fetch_all(urls, out)
        if self.filtered:
            self.note(f"{self.filtered} entries did not match the listen terms and were left out")

    def _fetch_all(self, urls: list[str], out: dict[str, Any]) -> Iterator[crmsync.Record]:
        fetcher = crmsync.Fetcher(
            timeout=self.config["timeout"],
            deadline=self.config["deadline"],
            max_bytes=self.config["max_bytes"],
            per_host=self.config["per_host"],
            attempts=self.config["retries"],
            max_wait=self.config["retry_max_wait"],
            block_private=self.config["block_private_addresses"],
            verify=str(self.resolve_path(self.config["ca_file"])) if self.config.get("ca_file") else True,
            **({"user_agent": self.config["user_agent"]} if self.config.get("user_agent") else {}),
        )
        window = self.config["comment_window_days"]
        horizon = self.context.run_started - timedelta(days=window) if window else None
        queue: deque[tuple[str, dict[str, Any] | None]] = deque((u, None) for u in urls)
        queued = set(urls)
        for url, meta in out["comment_feeds"].items():
            published = meta.get("published")
            if horizon is None or published is None or datetime.fromisoformat(published) >= horizon:
                if url not in queued:
                    queue.append((url, meta))
                    queued.add(url)
        limit = self.config["concurrency"]
        cut_short: dict[str, int] = {}  # url: responses that ended before the document did
        pending: dict[Future[Any], tuple[str, dict[str, Any] | None]] = {}
        try:
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"rss-{self.instance}") as pool:

                finished: SimpleQueue[Future[Any]] = SimpleQueue()

                def submit(url: str, meta: dict[str, Any] | None) -> None:
                    st = out["feeds"].get(url, {})
                    target = st.get("moved_to") or url
                    fut = pool.submit(fetcher.fetch, target, etag=st.get("etag"), last_modified=st.get("last_modified"))
                    pending[fut] = (url, meta)
                    fut.add_done_callback(finished.put)

                while queue or pending:
                    while queue and len(pending) < limit * 2:
                        submit(*queue.popleft())
                    fut = finished.get()
                    url, meta = pending.pop(fut)
                    try:
                        res = fut.result()
                    except crmsync.FetchError as exc:
                        self.error(f"feed {url}: {exc}")
                        continue
                    st = out["feeds"].setdefault(url, {})
                    if res.moved_to and res.moved_to != st.get("moved_to"):
                        self.note(f"feed {url} moved permanently to {res.moved_to}; crmsync now fetches the new address (update the config)")
                        st["moved_to"] = res.moved_to
                    if res.status != 304:
                        digest = hashlib.sha256(res.body or b"").hexdigest()
                        if digest != st.get("digest"):
                            discovered: list[tuple[str, dict[str, Any]]] = []
                            body = res.body or b""
                            incomplete: list[str] = []
                            yield from self.guard(url, body, self._document(body, url, meta or {}, out, http=True, discovered=discovered, feed_state=st, charset=charset_of(res.content_type), incomplete=incomplete))
                            if incomplete:
                                # keep no validator, digest or record from a cut response: fetch it again
                                cut_short[url] = cut_short.get(url, 0) + 1
                                if cut_short[url] < self.config["retries"]:
                                    queue.append((url, meta))
                                else:
                                    self.error(f"feed {url}: {incomplete[0]} ({cut_short[url]} times); nothing from it was kept, the next run fetches it again")
                                continue
                            for cu, cmeta in discovered:
                                out["comment_feeds"][cu] = cmeta
                                if cu not in queued and (horizon is None or cmeta.get("published") is None or datetime.fromisoformat(cmeta["published"]) >= horizon):
                                    queue.append((cu, cmeta))
                                    queued.add(cu)
                        st["digest"] = digest
                    if res.etag:
                        st["etag"] = res.etag
                    if res.last_modified:
                        st["last_modified"] = res.last_modified
                    yield crmsync.Checkpoint(out)
        finally:
            fetcher.close()

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        location = ref.split("#", 1)[0]
        yield from self.guard(location, raw, self._document(raw, location, {}, None, http=False))

    # documents ----------------------------------------------------------
    def _document(
        self,
        data: bytes,
        location: str,
        parent: dict[str, Any],
        out: dict[str, Any] | None,
        *,
        http: bool,
        discovered: list[tuple[str, dict[str, Any]]] | None = None,
        feed_state: dict[str, Any] | None = None,
        charset: str | None = None,
        incomplete: list[str] | None = None,
    ) -> Iterator[crmsync.Record]:
        try:
            feed = parse_feed(data, charset=charset)
        except TruncatedFeed as exc:
            if incomplete is None:  # a file: into the quarantine; a new size or date reads it again
                yield self.reject(location, str(exc), data)
            else:
                incomplete.append(str(exc))
            return
        except FeedError as exc:
            yield self.reject(location, str(exc), data)
            return
        if feed.recovered:
            self.note(f"feed {location}: {feed.recovered}")
        scope = parent.get("scope") or feed.link or feed.self_url or location
        platform = detect_platform(feed)
        # provenance: the hash of the payload the entries came from
        payload_hash = hashlib.sha256(data).hexdigest()
        dates: list[datetime] = []
        undated = 0
        for n, entry in enumerate(feed.entries, 1):
            ref = f"{location}#item{n}"
            if entry.error:
                yield self.reject(ref, f"cannot read item: {entry.error}", self._raw(entry, data))
                continue
            if not entry.native_id:
                entry.native_id = _derived_id(entry)
                if entry.native_id is None:
                    yield self.reject(ref, "item has no guid/id, no link and nothing else to know it by (no title, date or text)", self._raw(entry, data))
                    continue
            try:
                rec = self._interaction(feed, entry, scope, location, platform, parent, payload_hash)
            except Exception as exc:  # noqa: BLE001 - one hostile item never fails the feed (building it does no I/O)
                yield self.reject(ref, f"invalid item: {crmsync.describe_failure(exc)}", self._raw(entry, data), error_type=type(exc).__name__)
                continue
            if rec.published:
                dates.append(rec.published)
            else:
                undated += 1
            if not self._keep(rec):
                continue
            yield rec
            if http and discovered is not None and self.config["follow_comments"] and entry.comments_feed and _is_url(entry.comments_feed):
                discovered.append((entry.comments_feed, {"parent": rec.interaction_id, "thread": rec.thread_id or rec.interaction_id, "scope": scope, "published": rec.published.isoformat() if rec.published else None}))
        if feed_state is not None and dates:
            previous = feed_state.get("newest")
            if previous and min(dates) > datetime.fromisoformat(previous) and len(feed.entries) > 1:
                self.note(f"feed {location}: its oldest entry ({min(dates).isoformat()}) is newer than the newest seen before ({previous}); entries may have scrolled off between polls; poll this feed more often")
            feed_state["newest"] = max([*dates, *([datetime.fromisoformat(previous)] if previous else [])]).isoformat()

    @staticmethod
    def _raw(entry: Entry, document: bytes) -> bytes:
        """The item's own bytes for the quarantine; the whole document when the item
        is nested too deeply to serialize (a replay then re-reads all of it, harmlessly)."""
        try:
            return entry.raw_bytes() or document
        except RecursionError:
            return document

    def _keep(self, rec: crmsync.Interaction) -> bool:
        if self.rules.excluded(rec.title, rec.body_text):
            self.filtered += 1
            return False
        if not self.filter:
            return True
        if rec.mentions:
            self._matched.add(rec.thread_id or rec.interaction_id)
            self._matched.add(rec.interaction_id)
            return True
        if (rec.in_reply_to and rec.in_reply_to in self._matched) or (rec.thread_id and rec.thread_id in self._matched):
            self._matched.add(rec.interaction_id)
            return True
        self.filtered += 1
        return False

    def _interaction(self, feed: Feed, e: Entry, feed_scope: str, location: str, platform: str | None, parent: dict[str, Any], payload_hash: str) -> crmsync.Interaction:
        # a guid that is not a URI is unique within its site: scope it by the
        # host the item links to, so a cross-post (same guid, same link) in
        # another feed gets the same id; without a link, by the feed
        scope = _site(e.link) or feed_scope
        who = author_of(feed, e, platform, feed_scope)
        author = crmsync.Identity(name=who.name, emails=[who.email] if who.email else [], handles=who.handles, profile_urls=who.profile_urls) if who else None
        parent_id, thread_id = self._thread(e, scope, parent)
        own = crmsync.make_interaction_id("feed", e.native_id, scope)
        title = crmsync.html_to_text(e.title) if e.title else None
        body = e.content_html or e.summary_html
        text = crmsync.html_to_text(body) if body else None
        engagement = {"comments": e.comments} if e.comments is not None else {}
        return self.interaction(
            native_id=e.native_id,
            scope=scope,
            kind="comment" if parent_id else "post",
            url=e.link,
            title=title,
            body_html=body,
            body_text=text,
            summary=crmsync.html_to_text(e.summary_html) if e.summary_html and e.content_html else None,
            language=e.language or feed.language,
            published=e.published or e.updated,
            updated=e.updated,
            author=author,
            in_reply_to=parent_id,
            thread_id=thread_id or own,
            tags=e.categories,
            mentions=self.rules.mentions(title, text),
            engagement=engagement,
            attachments=[crmsync.Attachment(**a) for a in e.enclosures],
            extra={"platform": platform} if platform else {},
            provenance=crmsync.Provenance(
                source_url=feed.self_url or location,
                record_ref=location,
                raw_hash=payload_hash,
                parser=f"crmsync_rss/{feed.format}",
                parser_version=PARSER_VERSION,
            ),
        )

    @staticmethod
    def _thread(e: Entry, scope: str, parent: dict[str, Any]) -> tuple[str | None, str | None]:
        """(in_reply_to, thread_id) from RFC 4685, WordPress conventions or the followed post."""

        def iid(native: str) -> str:
            return crmsync.make_interaction_id("feed", native, scope)

        wp = _WP_COMMENT_GUID.match(e.native_id or "")
        post = iid(wp.group(1)) if wp else parent.get("thread")
        if e.in_reply_to:
            target = crmsync.make_interaction_id("feed", e.in_reply_to, _site(e.in_reply_to_href) or scope)
            return target, post or target
        if e.content_reply_to and wp:
            nested = _COMMENT_FRAGMENT.search(e.content_reply_to)
            if nested:
                return iid(f"{wp.group(1)}#comment-{nested.group(1)}"), post
        if parent.get("parent"):
            return parent["parent"], post
        if wp:
            return post, post
        return None, None
