"""Interactions: the normalized records, one row per ``interaction_id``, with a
``version`` that goes up when the content hash changes (an edit).

:meth:`Interactions.write_batch` is the one transaction a source's batch goes
into: records, the people in it, its quarantined inputs and the bookmark after
it, so a crash leaves either all of a batch or none of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection

from ..contract.base import Rejected
from ..contract.schema import STORED, Identity, Interaction
from . import bookmarks as _bookmarks
from . import identities as _identities
from . import quarantine as _quarantine
from .database import Database, aware, chunks, utcnow, write_rows
from .tables import identities, interactions


@dataclass
class BatchResult:
    """What one committed batch changed."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    identities: int = 0
    quarantined: int = 0
    deleted: int = 0


class Interactions:
    def __init__(self, db: Database) -> None:
        self.db = db

    # writing -------------------------------------------------------------
    def write_batch(
        self,
        source: str,
        records: Sequence[Interaction],
        *,
        identities_: Sequence[Identity] = (),
        rejected: Sequence[Rejected] = (),
        bookmark: dict[str, Any] | None = None,
        run_id: str | None = None,
        takedowns: Sequence[str] = (),
    ) -> BatchResult:
        """Upsert a batch and move the bookmark, in one transaction.

        An interaction whose content hash is unchanged is left alone; a new hash
        is an edit and bumps ``version``. ``bookmark`` (if given) is stored in
        the same transaction, so it never gets ahead of the records.
        """
        result = BatchResult()
        now = utcnow()
        # the last occurrence of an id in a batch wins
        latest: dict[str, Interaction] = {}
        for rec in records:
            latest[rec.interaction_id] = rec
        with self.db.begin() as conn:
            existing = _existing(conn, list(latest))
            new_rows, upd_rows = [], []
            for iid, rec in latest.items():
                prev = existing.get(iid)
                if prev is None:
                    new_rows.append({"interaction_id": rec.interaction_id, "first_seen": now, **_row(rec, 1, now)})
                elif prev[0] != rec.content_hash:
                    upd_rows.append({"interaction_id": iid, **_row(rec, prev[1] + 1, now)})
                else:
                    result.unchanged += 1
            write_rows(conn, interactions, new_rows)
            write_rows(conn, interactions, upd_rows, where=("interaction_id",))
            result.new, result.updated = len(new_rows), len(upd_rows)
            people = {i.identity_id: i for i in identities_ if i.identity_id}
            for rec in latest.values():
                if rec.author is not None and rec.author.identity_id:
                    people.setdefault(rec.author.identity_id, rec.author)
            result.identities = _identities.upsert(conn, source, list(people.values()), now)
            for rej in rejected:
                _quarantine.put(conn, source, _quarantine.rejected_entry(source, rej), run_id, now)
            result.quarantined = len(rejected)
            if takedowns:
                result.deleted = _take_down(conn, takedowns, now)
            if bookmark is not None:
                _bookmarks.write(conn, source, bookmark, run_id, now)
        return result

    def classify(self, records: Sequence[Interaction]) -> dict[str, str]:
        """``new``, ``edit`` or ``same`` per interaction id, without writing (dry runs)."""
        with self.db.connect() as conn:
            existing = _existing(conn, [r.interaction_id for r in records])
        out = {}
        for rec in records:
            prev = existing.get(rec.interaction_id)
            out[rec.interaction_id] = "new" if prev is None else ("same" if prev[0] == rec.content_hash else "edit")
        return out

    # reading -------------------------------------------------------------
    def get(self, interaction_id: str) -> tuple[Interaction, int] | None:
        """The stored interaction and its version."""
        with self.db.connect() as conn:
            row = conn.execute(select(interactions.c.record, interactions.c.version).where(interactions.c.interaction_id == interaction_id)).first()
        return None if row is None else (Interaction.model_validate_json(row[0], context=STORED), row[1])

    def iter(
        self, *, sources: Sequence[str] | None = None, updated_before: datetime | None = None, unlinked_only: bool = False, page: int = 1000
    ) -> Iterator[tuple[Interaction, int]]:
        """Every stored interaction with its version, by id, in pages; only those last
        written before ``updated_before``, if given; only those whose author is not
        linked to a CRM contact, with ``unlinked_only``."""
        q = select(interactions.c.interaction_id, interactions.c.record, interactions.c.version)
        if sources is not None:
            q = q.where(interactions.c.source.in_(list(sources)))
        for rows in self._pages_by_id(_written_before_unlinked(q, updated_before, unlinked_only), page):
            for row in rows:
                yield Interaction.model_validate_json(row[1], context=STORED), row[2]

    def iter_authors(self, *, updated_before: datetime | None = None, unlinked_only: bool = False, author_ids: Iterable[str] | None = None, page: int = 2000) -> Iterator[tuple[str, Identity]]:
        """``(interaction_id, author)`` of stored interactions that have an author, by id,
        in pages, filtered as :meth:`iter` (and to the authors ``author_ids``, if
        given); reads no more of each record."""
        q = _written_before_unlinked(select(interactions.c.interaction_id, interactions.c.record).where(interactions.c.author_id.is_not(None)), updated_before, unlinked_only)
        queries = [q] if author_ids is None else [q.where(interactions.c.author_id.in_(chunk)) for chunk in chunks(sorted(set(author_ids)), 500)]
        for query in queries:
            for rows in self._pages_by_id(query, page):
                for iid, record in rows:
                    author = json.loads(record).get("author")
                    if author:
                        yield iid, Identity.model_validate(author)

    def _pages_by_id(self, q: Any, page: int) -> Iterator[list[Any]]:
        """Rows of ``q`` (its first column the interaction id) in pages by id, each page
        read on a connection of its own (a long scan holds no read transaction)."""
        after = ""
        while True:
            with self.db.connect() as conn:
                rows = conn.execute(q.where(interactions.c.interaction_id > after).order_by(interactions.c.interaction_id).limit(page)).all()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def count_by_source(self) -> dict[str, int]:
        with self.db.connect() as conn:
            return dict(conn.execute(select(interactions.c.source, func.count()).group_by(interactions.c.source)).all())

    def author_stats(self) -> list[tuple[str, int, int, int, float | None]]:
        """Per author: (identity_id, interactions, engagement, mentions, mean sentiment)."""
        return [row for page in self.author_stats_pages() for row in page]

    def author_stats_pages(self, page: int = 2000) -> Iterator[list[tuple[str, int, int, int, float | None]]]:
        """:meth:`author_stats` a page of authors at a time, streamed from one query: a
        store of 400,000 authors is never held at once. (The caller may write between
        pages: it reads a snapshot.)"""
        q = (
            select(interactions.c.author_id, func.count(), func.coalesce(func.sum(interactions.c.engagement), 0), func.coalesce(func.sum(interactions.c.mention_count), 0), func.avg(interactions.c.sentiment_score))
            .where(interactions.c.author_id.is_not(None))
            .group_by(interactions.c.author_id)
        )
        with self.db.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=page).execute(q)
            for part in result.partitions():
                yield [(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]) if r[4] is not None else None) for r in part]

    def response_queue(self, *, now: datetime | None = None, soon_hours: float = 24, limit: int = 20) -> dict[str, Any]:
        """Interactions that need a response: overdue and due soon."""
        now = now or utcnow()
        soon = now + timedelta(hours=soon_hours)
        base = and_(interactions.c.needs_response.is_(True), interactions.c.due_at.is_not(None))
        cols = [interactions.c.interaction_id, interactions.c.source, interactions.c.kind, interactions.c.priority, interactions.c.due_at, interactions.c.native_id]
        with self.db.connect() as conn:
            overdue_n = conn.execute(select(func.count()).select_from(interactions).where(and_(base, interactions.c.due_at < now))).scalar() or 0
            soon_n = conn.execute(select(func.count()).select_from(interactions).where(and_(base, interactions.c.due_at >= now, interactions.c.due_at < soon))).scalar() or 0
            rows = conn.execute(select(*cols).where(and_(base, interactions.c.due_at < soon)).order_by(interactions.c.due_at).limit(limit)).all()
        return {
            "overdue": overdue_n,
            "due_soon": soon_n,
            "next": [{"interaction_id": r[0], "source": r[1], "kind": r[2], "priority": r[3], "due_at": aware(r[4]).isoformat(), "native_id": r[5], "overdue": aware(r[4]) < now} for r in rows],
        }


def _take_down(conn: Connection, ids: Sequence[str], now: Any) -> int:
    """Mark the stored interactions ``ids`` deleted: a new version, which sinks delete."""
    n = 0
    for chunk in chunks(sorted(set(ids)), 500):
        rows = conn.execute(select(interactions.c.interaction_id, interactions.c.record, interactions.c.version).where(interactions.c.interaction_id.in_(chunk))).all()
        for iid, record, version in rows:
            rec = Interaction.model_validate_json(record, context=STORED)
            if rec.deleted:
                continue
            rec.deleted = True
            rec.content_hash = rec.compute_content_hash()
            conn.execute(update(interactions).where(interactions.c.interaction_id == iid).values(record=rec.model_dump_json(), content_hash=rec.content_hash, version=version + 1, updated_at=now))
            n += 1
    return n


def _existing(conn: Connection, ids: list[str]) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for chunk in chunks(ids, 500):
        q = select(interactions.c.interaction_id, interactions.c.content_hash, interactions.c.version).where(interactions.c.interaction_id.in_(chunk))
        for row in conn.execute(q):
            found[row[0]] = (row[1], row[2])
    return found


def _written_before_unlinked(q: Any, updated_before: datetime | None, unlinked_only: bool) -> Any:
    """``q`` narrowed to interactions last written before ``updated_before`` (if given)
    and, with ``unlinked_only``, to those whose author is not a CRM contact."""
    if updated_before is not None:
        q = q.where(interactions.c.updated_at < updated_before)
    if unlinked_only:
        contact = select(identities.c.identity_id).where(and_(identities.c.identity_id == interactions.c.author_id, identities.c.is_contact.is_(True)))
        q = q.where(and_(interactions.c.author_id.is_not(None), ~contact.exists()))
    return q


def _row(rec: Interaction, version: int, now: datetime) -> dict[str, Any]:
    """The columns of ``rec``'s row (all but ``interaction_id`` and ``first_seen``)."""
    return {
        "author_id": rec.author.identity_id if rec.author else None,
        "needs_response": rec.needs_response,
        "priority": rec.priority,
        "due_at": rec.due_at,
        "sentiment_score": rec.sentiment.score if rec.sentiment else None,
        "engagement": sum(v for v in rec.engagement.values() if isinstance(v, int)) if rec.engagement else None,
        "mention_count": len(rec.mentions),
        "source": rec.source,
        "channel": rec.channel,
        "kind": rec.kind,
        "native_id": rec.native_id,
        "published": rec.published,
        "content_hash": rec.content_hash,
        "version": version,
        "record": rec.model_dump_json(),
        "updated_at": now,
    }
