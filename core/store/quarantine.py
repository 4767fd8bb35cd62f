"""The quarantine: inputs a source could not read (``source`` is the source
instance) and deliveries a sink could not write (``sink:INSTANCE``), each with
its reason and raw payload, for ``crmsync quarantine list|show|replay|dismiss``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection

from ..contract.base import Rejected
from .database import Database, aware, utcnow
from .tables import quarantine


@dataclass
class QuarantineItem:
    """A quarantined input."""

    id: int
    source: str
    ref: str
    reason: str
    error_type: str
    raw: bytes | None
    status: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    run_id: str | None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "ref": self.ref,
            "reason": self.reason,
            "error_type": self.error_type,
            "status": self.status,
            "attempts": self.attempts,
            "raw_bytes": len(self.raw or b""),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }


@dataclass
class Entry:
    """One thing to quarantine, keyed by ``fingerprint`` (the same thing failing
    again updates its entry and counts an attempt)."""

    fingerprint: str
    ref: str
    reason: str
    error_type: str
    raw: bytes | None


class Quarantine:
    def __init__(self, db: Database) -> None:
        self.db = db

    def items(self, *, source: str | None = None, status: str | None = "open", limit: int | None = None) -> list[QuarantineItem]:
        q = select(quarantine).order_by(quarantine.c.id)
        if source:
            q = q.where(quarantine.c.source == source)
        if status:
            q = q.where(quarantine.c.status == status)
        if limit:
            q = q.limit(limit)
        with self.db.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def item(self, item_id: int) -> QuarantineItem | None:
        with self.db.connect() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == item_id)).first()
        return None if row is None else _item(row)

    def set_status(self, item_id: int, status: str, reason: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "last_seen": utcnow()}
        if reason is not None:
            values["reason"] = reason
        with self.db.begin() as conn:
            conn.execute(update(quarantine).where(quarantine.c.id == item_id).values(**values))

    def open_counts(self) -> dict[str, int]:
        """Open entries per source."""
        with self.db.connect() as conn:
            return dict(conn.execute(select(quarantine.c.source, func.count()).where(quarantine.c.status == "open").group_by(quarantine.c.source)).all())

    def open_refs(self, source: str) -> set[str]:
        """The refs of ``source``'s open entries."""
        with self.db.connect() as conn:
            return set(conn.execute(select(quarantine.c.ref).where(and_(quarantine.c.source == source, quarantine.c.status == "open"))).scalars())

    def put(self, source: str, entries: Iterable[Entry], run_id: str | None) -> None:
        """Open (or re-open) an entry per ``entries``, in one transaction."""
        now = utcnow()
        with self.db.begin() as conn:
            for entry in entries:
                put(conn, source, entry, run_id, now)

    def close(self, source: str, refs: list[str], status: str = "delivered") -> None:
        """Close ``source``'s open entries for ``refs``."""
        with self.db.begin() as conn:
            conn.execute(update(quarantine).where(and_(quarantine.c.source == source, quarantine.c.ref.in_(refs), quarantine.c.status == "open")).values(status=status, last_seen=utcnow()))


def rejected_entry(source: str, rej: Rejected) -> Entry:
    """A source's rejected input as an entry: the same ref and payload is the same entry."""
    raw_hash = hashlib.sha256(rej.raw).hexdigest() if rej.raw is not None else None
    fingerprint = hashlib.sha256(f"{source}\n{rej.ref}\n{raw_hash}".encode()).hexdigest()
    # the payload keeps every byte; the ref and reason are text a PostgreSQL column must accept
    return Entry(fingerprint, rej.ref.replace("\x00", "\\0"), rej.reason.replace("\x00", "\\0"), rej.error_type, rej.raw)


def put(conn: Connection, source: str, entry: Entry, run_id: str | None, now: datetime) -> None:
    """Open (or re-open, counting an attempt) ``entry`` inside the caller's transaction."""
    raw_hash = hashlib.sha256(entry.raw).hexdigest() if entry.raw is not None else None
    row = conn.execute(select(quarantine.c.id, quarantine.c.attempts).where(quarantine.c.fingerprint == entry.fingerprint)).first()
    if row is None:
        conn.execute(
            insert(quarantine).values(
                fingerprint=entry.fingerprint, source=source, ref=entry.ref, reason=entry.reason, error_type=entry.error_type,
                raw=entry.raw, raw_hash=raw_hash, status="open", attempts=1, run_id=run_id, first_seen=now, last_seen=now,
            )
        )
    else:
        conn.execute(
            update(quarantine).where(quarantine.c.id == row.id).values(
                reason=entry.reason, error_type=entry.error_type, raw=entry.raw, raw_hash=raw_hash, status="open",
                attempts=row.attempts + 1, run_id=run_id, last_seen=now,
            )
        )


def _item(r: Any) -> QuarantineItem:
    return QuarantineItem(
        id=r.id, source=r.source, ref=r.ref, reason=r.reason, error_type=r.error_type, raw=r.raw, status=r.status,
        attempts=r.attempts, first_seen=aware(r.first_seen), last_seen=aware(r.last_seen), run_id=r.run_id,
    )
