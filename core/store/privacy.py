"""Erasure and suppression: removing a person from the store, and the list of
(hashed) keys of erased people that later runs skip."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, or_, select

from .database import Database, chunks, utcnow
from .tables import contact_index, deliveries, identities, identity_candidates, identity_keys, interactions, suppressions


def key_hash(key: str) -> str:
    """The suppression list's form of a key (``email:a@b.example``): its SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Privacy:
    def __init__(self, db: Database) -> None:
        self.db = db

    def suppressed(self) -> set[str]:
        """Every suppressed key hash (a run loads them once)."""
        with self.db.connect() as conn:
            return set(conn.execute(select(suppressions.c.key_hash)).scalars())

    def suppress(self, keys: Iterable[str]) -> int:
        """Add ``keys`` (``kind:value``) to the suppression list, hashed; returns how many were new."""
        hashes = {key_hash(k) for k in keys}
        with self.db.begin() as conn:
            known = set()
            for chunk in chunks(sorted(hashes), 500):
                known.update(conn.execute(select(suppressions.c.key_hash).where(suppressions.c.key_hash.in_(chunk))).scalars())
            new = sorted(hashes - known)
            if new:
                now = utcnow()
                conn.execute(insert(suppressions), [{"key_hash": h, "created_at": now} for h in new])
        return len(new)

    def identities_mentioning(self, needles: Iterable[str]) -> dict[str, str]:
        """identity id -> record of identities whose record holds any of ``needles``
        (lower-cased text: an address, a handle); the caller checks each for real."""
        out: dict[str, str] = {}
        with self.db.connect() as conn:
            for needle in sorted(set(needles)):
                like = "%" + needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                q = select(identities.c.identity_id, identities.c.record).where(func.lower(identities.c.record).like(like, escape="\\"))
                out.update((r[0], r[1]) for r in conn.execute(q))
        return out

    def interactions_of(self, identity_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(interaction id, source) of everything the identities authored."""
        out: list[tuple[str, str]] = []
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(identity_ids)), 500):
                out.extend((r[0], r[1]) for r in conn.execute(select(interactions.c.interaction_id, interactions.c.source).where(interactions.c.author_id.in_(chunk))))
        return out

    def erase(self, identity_ids: Iterable[str], interaction_ids: Iterable[str], sinks_done: Iterable[str] = ()) -> dict[str, int]:
        """Remove the interactions, the identities with their keys and review-queue rows,
        and the ledger entries of ``sinks_done`` (the sinks that deleted their copies;
        others keep their entries, so what they still hold stays on record)."""
        ids, iids, done = sorted(set(identity_ids)), sorted(set(interaction_ids)), sorted(set(sinks_done))
        counts = {"interactions": 0, "identities": 0, "ledger_entries": 0}
        with self.db.begin() as conn:
            if self.db.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete=ON")  # the freed pages are zeroed, not left readable
            for chunk in chunks(iids, 500):
                if done:
                    counts["ledger_entries"] += conn.execute(delete(deliveries).where(deliveries.c.interaction_id.in_(chunk), deliveries.c.sink.in_(done))).rowcount or 0
                counts["interactions"] += conn.execute(delete(interactions).where(interactions.c.interaction_id.in_(chunk))).rowcount or 0
            for chunk in chunks(ids, 500):
                counts["identities"] += conn.execute(delete(identities).where(identities.c.identity_id.in_(chunk))).rowcount or 0
                conn.execute(delete(identity_keys).where(identity_keys.c.identity_id.in_(chunk)))
                conn.execute(delete(contact_index).where(contact_index.c.contact_id.in_(chunk)))
                conn.execute(delete(identity_candidates).where(or_(identity_candidates.c.author_id.in_(chunk), identity_candidates.c.contact_id.in_(chunk))))
        if self.db.dialect == "sqlite":
            with self.db.connect() as conn:  # and the write-ahead log that held them is emptied
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts


__all__ = ["Privacy", "key_hash"]
