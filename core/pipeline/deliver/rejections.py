"""Deliveries a sink could not write, kept in the quarantine as ``sink:INSTANCE``.

A sink reports a record the target refused (or that it refused to send) with
:meth:`crmsync.Sink.reject`. Such a record has no receipt, so it stays in the
sink's backlog and every run tries it again; its quarantine entry (one per
sink and interaction, however often it fails) holds the reason and the
request and response, secrets masked, for ``crmsync quarantine show``. When a
later run delivers it, the entry is closed (status ``delivered``);
``crmsync quarantine dismiss`` stops the retries by recording it as handled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, insert, select, update

from ...contract.base import Receipt, SinkRejection
from ...host.config import redact
from ...store.tables import quarantine

PREFIX = "sink:"
#: keys whose values are never kept, whatever the sink passes in a request or response
_SECRET_KEYS = ("authorization", "password", "secret", "token", "session", "api_key", "apikey", "cookie")


def quarantine_source(sink: str) -> str:
    """The quarantine's ``source`` column for a sink instance."""
    return f"{PREFIX}{sink}"


def sink_of(source: str) -> str | None:
    """The sink instance a quarantine entry belongs to, or ``None`` for a source's."""
    return source[len(PREFIX):] if source.startswith(PREFIX) else None


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if isinstance(k, str) and any(s in k.lower() for s in _SECRET_KEYS) else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _fingerprint(source: str, interaction_id: str) -> str:
    return hashlib.sha256(f"{source}\n{interaction_id}".encode()).hexdigest()


class RejectionLog:
    """The quarantine entries of one sink's delivery: recorded, then closed by receipts."""

    def __init__(self, store: Any, sink: str, run_id: str | None) -> None:
        self.store = store
        self.source = quarantine_source(sink)
        self.run_id = run_id
        with store.engine.connect() as conn:
            rows = conn.execute(select(quarantine.c.ref).where(and_(quarantine.c.source == self.source, quarantine.c.status == "open")))
            # refs are interaction ids: a receipt for one of them closes its entry
            self.open: set[str] = {r.ref for r in rows}

    def record(self, rejections: Iterable[SinkRejection]) -> dict[str, int]:
        """Quarantine ``rejections``; returns the count per kind (rejected, invalid)."""
        from ...store import utcnow

        counts = {"rejected": 0, "invalid": 0}
        latest = {r.interaction_id: r for r in rejections}
        if not latest:
            return counts
        now = utcnow()
        with self.store.begin() as conn:
            for r in latest.values():
                counts[r.kind] += 1
                raw = json.dumps(_mask({"interaction_id": r.interaction_id, "version": r.version, "kind": r.kind, "reason": r.reason, **(r.detail or {})}), indent=2, default=str).encode()
                reason = redact(f"{r.kind} (version {r.version}): {r.reason}")
                fp = _fingerprint(self.source, r.interaction_id)
                row = conn.execute(select(quarantine.c.id, quarantine.c.attempts).where(quarantine.c.fingerprint == fp)).first()
                error_type = "SinkRejected" if r.kind == "rejected" else "SinkInvalid"
                if row is None:
                    conn.execute(insert(quarantine).values(
                        fingerprint=fp, source=self.source, ref=r.interaction_id, reason=reason, error_type=error_type, raw=raw,
                        raw_hash=hashlib.sha256(raw).hexdigest(), status="open", attempts=1, run_id=self.run_id, first_seen=now, last_seen=now,
                    ))
                else:
                    conn.execute(update(quarantine).where(quarantine.c.id == row.id).values(
                        reason=reason, error_type=error_type, raw=raw, raw_hash=hashlib.sha256(raw).hexdigest(), status="open",
                        attempts=row.attempts + 1, run_id=self.run_id, last_seen=now,
                    ))
                self.open.add(r.interaction_id)
        return counts

    def resolve(self, receipts: Iterable[Receipt]) -> int:
        """Close the entries of records that are delivered now; returns how many."""
        if not self.open:
            return 0
        done = [r.interaction_id for r in receipts if r.interaction_id in self.open]
        if not done:
            return 0
        from ...store import utcnow

        with self.store.begin() as conn:
            conn.execute(update(quarantine).where(and_(quarantine.c.source == self.source, quarantine.c.ref.in_(done), quarantine.c.status == "open")).values(status="delivered", last_seen=utcnow()))
        self.open.difference_update(done)
        return len(done)


__all__ = ["RejectionLog", "quarantine_source", "sink_of"]
