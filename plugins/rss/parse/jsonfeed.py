"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from .dates import parse_date
from .model import Entry, Feed, FeedError, TruncatedFeed
from .text import each, split_author

# the spec's URL form, and the bare numbers some feeds write ("1", "1.0", "1.1")
_VERSION = re.compile(r"^(?:https?://jsonfeed\.org/version/)?(1(?:\.\d+)?)/?$")


def parse_json_feed(data: bytes) -> Feed:
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
    version = _VERSION.match(str(doc.get("version", "")).strip()) if isinstance(doc, dict) else None
    if version is None:
        msg = "not a JSON Feed: 'version' is not https://jsonfeed.org/version/1 or 1.1 (or 1, 1.0, 1.1)"
        raise FeedError(msg)
    feed = Feed(format="jsonfeed" + version.group(1), title=doc.get("title"), link=doc.get("home_page_url"), self_url=doc.get("feed_url"), language=doc.get("language"))
    feed_authors = doc.get("authors") or ([doc["author"]] if isinstance(doc.get("author"), dict) else [])
    items = [item for item in doc.get("items") or [] if isinstance(item, dict)]
    feed.entries.extend(each(items, _json_item, feed_authors))
    return feed


def _json_item(item: dict[str, Any], feed_authors: list[Any]) -> Entry:
    authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else feed_authors)
    author = authors[0] if authors and isinstance(authors[0], dict) else {}
    content_html = item.get("content_html")
    if content_html is None and item.get("content_text") is not None:
        content_html = "<p>" + html.escape(str(item["content_text"])) + "</p>"
    native = item.get("id")
    name, email = split_author(author.get("name"))
    e = Entry(
        native_id=str(native) if native not in (None, "") else item.get("url"),
        link=item.get("url") or item.get("external_url"),
        title=item.get("title"),
        content_html=content_html,
        summary_html=html.escape(str(item["summary"])) if item.get("summary") else None,
        author_name=name,
        author_email=email,
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


__all__ = ["parse_json_feed"]
