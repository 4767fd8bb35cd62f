"""The crmsync store, by concern. One :class:`Store` per URL holds its parts;
callers name the part they need (``store.ledger.pending(...)``):

* ``database``: the engine, migrations and the serialized write transaction;
* ``locks``: run locks (the store, each source and sink instance);
* ``interactions``: the records, and the one transaction a source batch goes into;
* ``bookmarks``: where each source's next run starts;
* ``identities``: contacts, authors, clustering keys, the review queue;
* ``ledger``: which version of each interaction each sink confirmed;
* ``quarantine``: what could not be read or written, for inspection and replay;
* ``runs``: one record per run, with its report;
* ``privacy``: erasing a person, and the suppression list later runs skip.

SQL lives in these modules only; ``tables`` and ``migrations`` define the schema.
"""

from __future__ import annotations

import warnings
from typing import Any

from .bookmarks import Bookmarks
from .database import SCHEMA_HEAD, Database, utcnow
from .identities import Identities
from .interactions import BatchResult, Interactions
from .ledger import Ledger, PendingItem
from .locks import STORE_LOCK, Locks
from .privacy import Privacy
from .quarantine import Quarantine, QuarantineItem
from .runs import Runs


class Store:
    """Access to one crmsync store. Thread-safe: each call uses its own connection."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.db = Database(url, migrate=migrate)
        self.locks = Locks(self.db)
        self.interactions = Interactions(self.db)
        self.bookmarks = Bookmarks(self.db)
        self.identities = Identities(self.db)
        self.ledger = Ledger(self.db)
        self.quarantine = Quarantine(self.db)
        self.runs = Runs(self.db)
        self.privacy = Privacy(self.db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def display_url(self) -> str:
        return self.db.display_url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def engine(self) -> Any:
        return self.db.engine

    def migrate(self) -> None:
        self.db.migrate()

    def after_fork(self) -> Store:
        """In a forked worker process: connections and locks of its own (the parent's
        are left untouched). Every part sees the change."""
        self.db.after_fork()
        self.locks.after_fork()
        return self

    def dispose(self) -> None:
        self.locks.release()
        self.db.dispose()

    def counts(self) -> dict[str, Any]:
        """Totals for ``crmsync status``."""
        return {"interactions": self.interactions.count_by_source(), "identities": self.identities.count(), "quarantine_open": self.quarantine.open_counts()}

    def __getattr__(self, name: str) -> Any:
        # crmsync 0.1's flat Store methods, for one release
        moved = _FLAT.get(name)
        if moved is None:
            msg = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(msg)
        part, new = moved
        warnings.warn(f"Store.{name} moved to Store.{part}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(getattr(self, part), new)


#: crmsync 0.1's ``Store`` methods -> (part, method)
_FLAT = {
    "acquire_lock": ("locks", "acquire_lock"), "acquire_locks": ("locks", "acquire_locks"), "try_lock": ("locks", "try_lock"),
    "lock_holder": ("locks", "holder"), "release_lock": ("locks", "release"),
    "write_batch": ("interactions", "write_batch"), "classify": ("interactions", "classify"), "iter_interactions": ("interactions", "iter"),
    "iter_authors": ("interactions", "iter_authors"), "get_interaction": ("interactions", "get"), "response_queue": ("interactions", "response_queue"),
    "author_stats": ("interactions", "author_stats"),
    "get_bookmark": ("bookmarks", "get"), "set_bookmark": ("bookmarks", "set"), "reset_bookmark": ("bookmarks", "reset"), "all_bookmarks": ("bookmarks", "all"),
    "pending": ("ledger", "pending"), "backlog": ("ledger", "backlog"), "record_receipts": ("ledger", "record"), "reset_ledger": ("ledger", "reset"),
    "ledger_counts": ("ledger", "counts"),
    "iter_identities": ("identities", "all"), "identities_by_id": ("identities", "by_id"), "identities_by_keys": ("identities", "by_keys"),
    "update_identities": ("identities", "update"), "contacts": ("identities", "contacts"), "count_contacts": ("identities", "count_contacts"),
    "decisions": ("identities", "decisions"), "add_candidates": ("identities", "add_candidates"), "candidates": ("identities", "candidates"),
    "decide": ("identities", "decide"), "unapplied_decisions": ("identities", "unapplied_decisions"),
    "mark_decisions_applied": ("identities", "mark_decisions_applied"), "cluster": ("identities", "cluster"),
    "quarantine_items": ("quarantine", "items"), "quarantine_item": ("quarantine", "item"), "set_quarantine_status": ("quarantine", "set_status"),
    "start_run": ("runs", "start"), "finish_run": ("runs", "finish"), "recent_runs": ("runs", "recent"),
}

__all__ = ["SCHEMA_HEAD", "STORE_LOCK", "BatchResult", "PendingItem", "QuarantineItem", "Store", "utcnow"]
