#!/usr/bin/env python3
"""Anchor 3, the ecosystem's default pipeline: a singer-sdk tap that parses the raw
corpus with the libraries a tap author reaches for: feedparser for RSS/Atom (and
``json`` for JSON Feed, which feedparser cannot read), the standard library's
``email.policy.default`` for the mbox and Maildir, ``csv`` and ``json`` for the
review exports. Three streams; piped into target-jsonl by bench_all.py.

    python tap_raw.py --config '{"corpus": "/path/to/corpus"}'
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import mailbox
from pathlib import Path
from typing import Any

import feedparser
from singer_sdk import Stream, Tap
from singer_sdk import typing as th

POST = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("source", th.StringType),
    th.Property("title", th.StringType),
    th.Property("url", th.StringType),
    th.Property("author", th.StringType),
    th.Property("published", th.StringType),
    th.Property("body", th.StringType),
).to_dict()


class FeedsStream(Stream):
    name = "feeds"
    primary_keys = ("id",)
    schema = POST

    def get_records(self, context: Any) -> Any:
        for path in sorted((Path(self.config["corpus"]) / "feeds").iterdir()):
            data = path.read_bytes()
            if data.lstrip().startswith(b"{"):
                feed = json.loads(data)
                for item in feed.get("items", []):
                    authors = item.get("authors") or []
                    yield {"id": str(item.get("id")), "source": path.name, "title": item.get("title"), "url": item.get("url"),
                           "author": authors[0].get("name") if authors else None, "published": item.get("date_published"),
                           "body": item.get("content_text") or item.get("content_html")}
                continue
            parsed = feedparser.parse(data)
            for e in parsed.entries:
                content = e.get("content")
                yield {"id": e.get("id") or e.get("link") or "", "source": path.name, "title": e.get("title"), "url": e.get("link"),
                       "author": e.get("author"), "published": e.get("published") or e.get("updated"),
                       "body": content[0].value if content else e.get("summary")}


def _mail_record(msg: email.message.EmailMessage, where: str) -> dict[str, Any]:
    body = msg.get_body(preferencelist=("plain", "html"))
    return {"id": str(msg.get("Message-ID") or where), "source": where, "title": str(msg.get("Subject") or ""), "url": None,
            "author": str(msg.get("From") or ""), "published": str(msg.get("Date") or ""), "body": body.get_content() if body else None}


class MailStream(Stream):
    name = "mail"
    primary_keys = ("id",)
    schema = POST

    def get_records(self, context: Any) -> Any:
        root = Path(self.config["corpus"]) / "mail"
        factory = lambda fh: email.message_from_binary_file(fh, policy=email.policy.default)  # noqa: E731
        for msg in mailbox.mbox(root / "archive.mbox", factory=factory):
            yield _mail_record(msg, "archive.mbox")
        for sub in ("cur", "new"):
            d = root / "Maildir" / sub
            for path in sorted(d.iterdir()) if d.exists() else []:
                yield _mail_record(email.message_from_bytes(path.read_bytes(), policy=email.policy.default), path.name)


class ReviewsStream(Stream):
    name = "reviews"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("source", th.StringType),
        th.Property("author", th.StringType),
        th.Property("rating", th.NumberType),
        th.Property("body", th.StringType),
        th.Property("published", th.StringType),
    ).to_dict()

    def get_records(self, context: Any) -> Any:
        root = Path(self.config["corpus"]) / "reviews"
        with open(root / "reviews.csv", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield {"id": row["review_id"], "source": "reviews.csv", "author": row["reviewer_name"],
                       "rating": float(row["stars"]) if row["stars"] else None, "body": row["body"], "published": row["created_at"]}
        with open(root / "platform.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                yield {"id": row["id"], "source": "platform.jsonl", "author": (row.get("user") or {}).get("display_name"),
                       "rating": row.get("rating"), "body": row.get("text"), "published": str(row.get("created_ms"))}


class TapRaw(Tap):
    name = "tap-bench-raw"
    config_jsonschema = th.PropertiesList(th.Property("corpus", th.StringType, required=True)).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [FeedsStream(self), MailStream(self), ReviewsStream(self)]


if __name__ == "__main__":
    TapRaw.cli()
