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


from ...contract.base import Receipt, SinkRejection
from ...host.secrets import redact
from ...store.quarantine import Entry, Quarantine

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

    def __init__(self, quarantine: Quarantine, sink: str, run_id: str | None) -> None:
        self.quarantine = quarantine
        self.source = quarantine_source(sink)
        self.run_id = run_id
        # refs are interaction ids: a receipt for one of them closes its entry
        self.open: set[str] = quarantine.open_refs(self.source)

    def record(self, rejections: Iterable[SinkRejection]) -> dict[str, int]:
        """Quarantine ``rejections``; returns the count per kind (rejected, invalid)."""
        counts = {"rejected": 0, "invalid": 0}
        latest = {r.interaction_id: r for r in rejections}
        if not latest:
            return counts
        entries = []
        for r in latest.values():
            counts[r.kind] += 1
            raw = json.dumps(_mask({"interaction_id": r.interaction_id, "version": r.version, "kind": r.kind, "reason": r.reason, **(r.detail or {})}), indent=2, default=str).encode()
            reason = redact(f"{r.kind} (version {r.version}): {r.reason}")
            error_type = "SinkRejected" if r.kind == "rejected" else "SinkInvalid"
            entries.append(Entry(_fingerprint(self.source, r.interaction_id), r.interaction_id, reason, error_type, raw))
        self.quarantine.put(self.source, entries, self.run_id)
        self.open.update(latest)
        return counts

    def resolve(self, receipts: Iterable[Receipt]) -> int:
        """Close the entries of records that are delivered now; returns how many."""
        if not self.open:
            return 0
        done = [r.interaction_id for r in receipts if r.interaction_id in self.open]
        if not done:
            return 0
        self.quarantine.close(self.source, done)
        self.open.difference_update(done)
        return len(done)


__all__ = ["RejectionLog", "quarantine_source", "sink_of"]
