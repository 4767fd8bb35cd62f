"""The ``sql`` sink's own tables and the rows it writes into them.

Three tables, named with the sink's ``table_prefix`` (default ``crmsync_``):

* ``interactions``: one row per interaction, upserted by ``interaction_id``, with
  typed columns for what a CRM or a reverse-ETL sync reads (title, text, author,
  the matched CRM contact, sentiment, rating, triage, thread, link) and the whole
  record as JSON in ``record``;
* ``authors``: one row per author (``identity_id``) with the store's profile;
* ``contact_links``: ``(identity_id, crm) -> crm_id``, one row per CRM an author
  is linked to.

Schema changes: a column this module gains is added to an existing table
(``ALTER TABLE ... ADD COLUMN``, nullable) when the sink opens; nothing is
dropped or retyped (a column crmsync no longer writes stays, unfilled).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import crmsync
from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text

TRUNCATION_MARKER = "…[truncated]"


def own_tables(prefix: str) -> tuple[MetaData, Table, Table, Table]:
    """The sink's tables under ``prefix``."""
    md = MetaData()
    interactions = Table(
        f"{prefix}interactions",
        md,
        Column("interaction_id", String(36), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("source", String(200), nullable=False),
        Column("channel", String(40), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("native_id", Text, nullable=False),
        Column("url", Text),
        Column("title", Text),
        Column("summary", Text),
        Column("body_text", Text),
        Column("language", String(16)),
        Column("published", DateTime(timezone=True), index=True),
        Column("updated", DateTime(timezone=True)),
        Column("author_id", String(36), index=True),
        Column("author_name", Text),
        Column("author_email", Text),
        Column("crm_contact_id", String(200), index=True),
        Column("thread_id", String(36), index=True),
        Column("in_reply_to", String(36)),
        Column("sentiment_score", Float),
        Column("sentiment_label", String(16)),
        Column("rating", Float),
        Column("needs_response", Boolean),
        Column("priority", String(16)),
        Column("due_at", DateTime(timezone=True)),
        Column("record", Text, nullable=False),
        Column("synced_at", DateTime(timezone=True), nullable=False),
    )
    authors = Table(
        f"{prefix}authors",
        md,
        Column("identity_id", String(36), primary_key=True),
        Column("name", Text),
        Column("emails", Text),
        Column("handles", Text),
        Column("company", Text),
        Column("influence", Float),
        Column("flags", Text),
        Column("synced_at", DateTime(timezone=True), nullable=False),
    )
    links = Table(
        f"{prefix}contact_links",
        md,
        Column("identity_id", String(36), primary_key=True),
        Column("crm", String(100), primary_key=True),
        Column("crm_id", String(200), nullable=False),
    )
    return md, interactions, authors, links


def interaction_row(d: crmsync.Delivery, now: datetime) -> dict[str, Any]:
    rec = d.interaction
    author = d.author_profile or rec.author
    crm_ids = dict(author.crm_ids) if author else {}
    return {
        "interaction_id": rec.interaction_id,
        "version": d.version,
        "source": rec.source,
        "channel": rec.channel,
        "kind": rec.kind,
        "native_id": rec.native_id,
        "url": rec.url,
        "title": rec.title,
        "summary": rec.summary,
        "body_text": rec.body_text,
        "language": rec.language,
        "published": rec.published,
        "updated": rec.updated,
        "author_id": author.identity_id if author else None,
        "author_name": author.name if author else None,
        "author_email": author.emails[0] if author and author.emails else None,
        "crm_contact_id": next(iter(sorted(crm_ids.items())), (None, None))[1],
        "thread_id": rec.thread_id,
        "in_reply_to": rec.in_reply_to,
        "sentiment_score": rec.sentiment.score if rec.sentiment else None,
        "sentiment_label": rec.sentiment.label if rec.sentiment else None,
        "rating": rec.rating.normalized if rec.rating else None,
        "needs_response": rec.needs_response,
        "priority": rec.priority,
        "due_at": rec.due_at,
        "record": rec.model_dump_json(),
        "synced_at": now,
    }


def author_rows(deliveries: list[crmsync.Delivery], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The authors of ``deliveries`` (one row each) and their CRM links."""
    people: dict[str, crmsync.Identity] = {}
    for d in deliveries:
        author = d.author_profile or d.interaction.author
        if author is not None and author.identity_id:
            people[author.identity_id] = author
    rows, links = [], []
    for pid, p in people.items():
        rows.append({
            "identity_id": pid, "name": p.name, "emails": ";".join(p.emails) or None, "handles": ";".join(p.handles) or None,
            "company": p.company, "influence": p.influence, "flags": json.dumps(p.flags) if p.flags else None, "synced_at": now,
        })
        links += [{"identity_id": pid, "crm": crm, "crm_id": cid} for crm, cid in sorted(p.crm_ids.items())]
    return rows, links


def utcnow() -> datetime:
    return datetime.now(UTC)
