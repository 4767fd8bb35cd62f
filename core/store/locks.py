"""Run locks, in two levels.

The *store* lock is shared by every run and taken exclusively by whole-store
work (and by tests): a run cannot start while it is held. Below it, each
source and sink instance has its own exclusive lock (``"source:blogs"``,
``"sink:crm"``), so runs with disjoint sources work side by side on one store
while one instance is never driven by two processes at once. All locks die
with their process: SQLite uses OS file locks beside the database, PostgreSQL
session advisory locks on one held connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..contract.errors import LockedError
from .database import Database, aware, utcnow
from .tables import runs

STORE_LOCK = "store"
_PG_STORE_KEY = 7436910021
_PG_INSTANCE_CLASS = 743691


class Locks:
    """The locks one process holds on a store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._held: dict[str, Any] = {}
        self._lock_conn: Connection | None = None
        self._mutex = threading.RLock()

    def after_fork(self) -> None:
        """In a forked worker: the parent's locks stay the parent's (never released here)."""
        self._held = {}
        self._lock_conn = None
        self._mutex = threading.RLock()

    def acquire_lock(self, run_id: str, *, wait: bool = False, timeout: float | None = None) -> None:
        """Take the whole store exclusively or raise :class:`LockedError` naming the holder."""
        self.acquire_locks(run_id, [], exclusive_store=True, wait=wait, timeout=timeout)

    def acquire_locks(
        self, run_id: str, names: Sequence[str], *, exclusive_store: bool = False, wait: bool = False, timeout: float | None = None
    ) -> None:
        """Take the store lock (shared unless ``exclusive_store``) and the locks ``names``
        (e.g. ``"source:blogs"``), all or nothing; raise :class:`LockedError` naming the
        holder of the first one that is busy, or wait for it with ``wait``."""
        holder = _holder(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = [(STORE_LOCK, exclusive_store)] + [(n, True) for n in sorted(set(names))]
        while True:
            busy = None
            with self._mutex:
                taken: list[str] = []
                for name, exclusive in wanted:
                    if name in self._held:
                        continue
                    if not self._try_one(name, exclusive, holder):
                        busy = name
                        break
                    taken.append(name)
                if busy is not None:
                    for name in taken:  # all or nothing: never hold half while waiting
                        self._release_one(name)
            if busy is None:
                return
            if not wait or (deadline is not None and time.monotonic() > deadline):
                info = self.holder(busy)
                who = f"run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, started {info.get('started')})" if info else "another run"
                what = "the store" if busy == STORE_LOCK else busy.replace(":", " ", 1)
                msg = f"{what} ({self.db.display_url}) is locked by {who}; wait for it to finish or use --wait"
                raise LockedError(msg, lock=busy)
            time.sleep(0.5)

    def try_lock(self, run_id: str, name: str) -> bool:
        """Take one instance lock if it is free (for sinks the run skips when busy)."""
        with self._mutex:
            return name in self._held or self._try_one(name, True, _holder(run_id))

    def holder(self, name: str = STORE_LOCK) -> dict[str, Any]:
        """Who holds lock ``name``, as far as the store knows."""
        if self.db.dialect == "sqlite" and self.db.sqlite_path is not None:
            with contextlib.suppress(OSError, ValueError):
                return json.loads(self._lock_path(name).read_text() or "{}")
            return {}
        with self.db.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.status == "running").order_by(runs.c.started_at.desc()).limit(1)).first()
        if row is None:
            return {}
        return {"run_id": row.run_id, "pid": row.pid, "host": row.host, "started": aware(row.started_at).isoformat()}

    def release(self, name: str | None = None) -> None:
        """Release lock ``name``, or every lock held here."""
        with self._mutex:
            for n in [name] if name else list(self._held):
                if n in self._held:
                    self._release_one(n)
            if not self._held and self._lock_conn is not None:
                conn, self._lock_conn = self._lock_conn, None
                with contextlib.suppress(Exception):
                    conn.close()

    def _lock_path(self, name: str) -> Path:
        path = self.db.sqlite_path
        assert path is not None
        if name == STORE_LOCK:
            return path.with_name(path.name + ".lock")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        return path.with_name(f"{path.name}.{safe}-{digest}.lock")

    def _try_one(self, name: str, exclusive: bool, holder: dict[str, Any]) -> bool:
        if self.db.dialect == "sqlite":
            if self.db.sqlite_path is None:  # in-memory: one process only
                self._held[name] = None
                return True
            import fcntl

            fh = open(self._lock_path(name), "a+")  # noqa: SIM115 - held for the run
            try:
                fcntl.flock(fh.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                return False
            if exclusive:
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(holder))
                fh.flush()
            self._held[name] = fh
            return True
        if self.db.dialect == "postgresql":
            if self._lock_conn is None:
                self._lock_conn = self.db.connect()
            got = self._lock_conn.exec_driver_sql(_pg_lock_sql(name, "try", exclusive)).scalar()
            self._lock_conn.commit()
            if got:
                self._held[name] = exclusive
            return bool(got)
        self._held[name] = None
        return True

    def _release_one(self, name: str) -> None:
        handle = self._held.pop(name, None)
        if self.db.dialect == "postgresql" and self._lock_conn is not None:
            with contextlib.suppress(Exception):
                self._lock_conn.exec_driver_sql(_pg_lock_sql(name, "unlock", bool(handle)))
                self._lock_conn.commit()
        elif handle is not None:
            handle.close()


def _holder(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "started": utcnow().isoformat()}


def _pg_lock_sql(name: str, op: str, exclusive: bool) -> str:
    """The advisory-lock call for lock ``name``: the store on a bigint key, each
    instance on a two-int key (a separate key space in PostgreSQL)."""
    import zlib

    if name == STORE_LOCK:
        args = str(_PG_STORE_KEY)
    else:
        objid = zlib.crc32(name.encode()) - (1 << 31)  # int4 range
        args = f"{_PG_INSTANCE_CLASS}, {objid}"
    fn = {"try": "pg_try_advisory_lock", "unlock": "pg_advisory_unlock"}[op]
    if not exclusive:
        fn += "_shared"
    return f"SELECT {fn}({args})"
