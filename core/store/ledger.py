"""The delivery ledger: which version of each interaction each sink holds.

An entry is written only after the sink confirmed the write (a receipt), so
what a sink lacks is always the interactions with no entry or an older
version: :meth:`Ledger.pending`. Sinks upsert by ``interaction_id``; a crash
between a write and its entry re-sends it, never loses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select

from ..contract.base import Receipt
from ..contract.schema import STORED, Interaction
from .database import Database, chunks, utcnow, write_rows
from .tables import deliveries, interactions


@dataclass
class PendingItem:
    """An interaction version a sink has not received yet."""

    interaction: Interaction
    version: int
    delivered_version: int | None
    external_id: str | None


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    def pending(self, sink: str, *, sources: Sequence[str] | None = None, after: str = "", before: str | None = None, limit: int = 500) -> list[PendingItem]:
        """The next page of interaction versions ``sink`` has not received, by id
        (ids after ``after`` and, if given, below ``before``)."""
        join, cond = _pending_filter(sink, sources)
        if before is not None:
            cond = and_(cond, interactions.c.interaction_id < before)
        q = (
            select(interactions.c.interaction_id, interactions.c.version, interactions.c.record, deliveries.c.version, deliveries.c.external_id)
            .select_from(join)
            .where(and_(cond, interactions.c.interaction_id > after))
            .order_by(interactions.c.interaction_id)
            .limit(limit)
        )
        with self.db.connect() as conn:
            # parsed row by row: the page's raw JSON is not all held beside its models
            return [PendingItem(Interaction.model_validate_json(r[2], context=STORED), r[1], r[3], r[4]) for r in conn.execute(q)]

    def backlog(self, sink: str, sources: Sequence[str] | None = None) -> int:
        """How many interaction versions ``sink`` has not received."""
        join, cond = _pending_filter(sink, sources)
        with self.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(join).where(cond)).scalar() or 0

    def record(self, sink: str, receipts: Iterable[Receipt], run_id: str | None = None) -> int:
        """Write ledger entries for durable deliveries (upsert by sink and id)."""
        latest: dict[str, Receipt] = {}
        for r in receipts:
            latest[r.interaction_id] = r
        if not latest:
            return 0
        now = utcnow()
        with self.db.begin() as conn:
            have = set()
            for chunk in chunks(list(latest), 500):
                q = select(deliveries.c.interaction_id).where(and_(deliveries.c.sink == sink, deliveries.c.interaction_id.in_(chunk)))
                have.update(conn.execute(q).scalars())
            # in slices, one transaction: a file set confirms 50,000 receipts at once, and
            # their parameter rows all at once were the sink phase's largest allocation
            for chunk in chunks(list(latest.values()), 2000):
                new_rows = [
                    {"sink": sink, "interaction_id": r.interaction_id, "version": r.version, "external_id": r.external_id, "run_id": run_id, "delivered_at": now}
                    for r in chunk if r.interaction_id not in have
                ]
                upd_rows = [
                    {"sink": sink, "interaction_id": r.interaction_id, "version": r.version, "external_id": r.external_id, "run_id": run_id, "delivered_at": now}
                    for r in chunk if r.interaction_id in have
                ]
                write_rows(conn, deliveries, new_rows)
                write_rows(conn, deliveries, upd_rows, where=("sink", "interaction_id"))
        return len(latest)

    def reset(self, sink: str) -> int:
        """Forget what ``sink`` received, so it gets the whole history again."""
        with self.db.begin() as conn:
            return conn.execute(delete(deliveries).where(deliveries.c.sink == sink)).rowcount

    def forget(self, sink: str, *, since: datetime | None = None, sources: Sequence[str] | None = None) -> int:
        """Drop ``sink``'s entries (delivered at or after ``since``, of interactions from
        ``sources``, if given), so the next run delivers those again; returns how many."""
        cond = deliveries.c.sink == sink
        if since is not None:
            cond = and_(cond, deliveries.c.delivered_at >= since)
        if sources:
            cond = and_(cond, deliveries.c.interaction_id.in_(select(interactions.c.interaction_id).where(interactions.c.source.in_(list(sources)))))
        with self.db.begin() as conn:
            return conn.execute(delete(deliveries).where(cond)).rowcount

    def entries(self, sink: str) -> dict[str, tuple[int, str | None]]:
        """``interaction_id -> (version, external_id)`` for ``sink``."""
        with self.db.connect() as conn:
            q = select(deliveries.c.interaction_id, deliveries.c.version, deliveries.c.external_id).where(deliveries.c.sink == sink)
            return {r[0]: (r[1], r[2]) for r in conn.execute(q)}

    def counts(self) -> dict[str, int]:
        """Ledger entries per sink."""
        with self.db.connect() as conn:
            return dict(conn.execute(select(deliveries.c.sink, func.count()).group_by(deliveries.c.sink)).all())


def _pending_filter(sink: str, sources: Sequence[str] | None) -> tuple[Any, Any]:
    join = interactions.outerjoin(deliveries, and_(deliveries.c.sink == sink, deliveries.c.interaction_id == interactions.c.interaction_id))
    cond = or_(deliveries.c.version.is_(None), deliveries.c.version < interactions.c.version)
    if sources is not None:
        cond = and_(cond, interactions.c.source.in_(list(sources)))
    return join, cond
