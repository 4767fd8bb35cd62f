"""The crmsync store: interactions, identities, bookmarks, the delivery ledger,
the quarantine and run history, behind any SQLAlchemy URL.

SQLite (the default, one file) and PostgreSQL (shared by a team) are tested.
The schema is created and upgraded by Alembic migrations on open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, make_url

from ..contract.base import Receipt, Rejected
from ..host.config import redact_url
from ..contract.errors import ConfigError, FatalError, LockedError
from ..contract.schema import STORED, Identity, Interaction
from .tables import bookmarks, deliveries, identities, identity_candidates, identity_keys, interactions, quarantine, runs


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass
class BatchResult:
    """What one committed batch changed."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    identities: int = 0
    quarantined: int = 0


@dataclass
class PendingItem:
    """An interaction version a sink has not received yet."""

    interaction: Interaction
    version: int
    delivered_version: int | None
    external_id: str | None


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


class Store:
    """Access to one crmsync store. Thread-safe: each call uses its own connection."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            msg = f"store URL {redact_url(url)!r} is not a valid SQLAlchemy URL: {exc}"
            raise ConfigError(msg) from None
        self.dialect = parsed.get_backend_name()
        self.sqlite_path: Path | None = None
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                self.sqlite_path = Path(db)
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 60})
            _sqlite_setup(self.engine)
        else:
            try:
                self.engine = create_engine(url, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                msg = f"store URL {redact_url(url)!r} needs the database driver {exc.name!r}: pip install 'crmsync[postgres]'"
                raise ConfigError(msg) from None
        self._held: dict[str, Any] = {}
        self._lock_conn: Connection | None = None
        self._locks_mutex = threading.RLock()
        # one writer at a time in this process; other processes queue on the database's own lock
        self._write_lock = threading.Lock()
        if migrate:
            self.migrate()

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    # schema --------------------------------------------------------------
    def _alembic_config(self):  # noqa: ANN202
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "crmsync.store:migrations")
        return cfg

    def migrate(self) -> None:
        """Create or upgrade the store's schema to the latest migration."""
        # the common case, a store at head, without importing Alembic (a third of start-up)
        try:
            with self.engine.connect() as conn:
                current = conn.exec_driver_sql(f"SELECT version_num FROM {_VERSION_TABLE}").scalar() if self._has_version_table(conn) else None
        except Exception as exc:  # noqa: BLE001
            msg = f"cannot open the store {self.display_url}: {_first_line(exc)}"
            raise ConfigError(msg) from None
        if current == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.script import ScriptDirectory

        cfg = self._alembic_config()
        head = ScriptDirectory.from_config(cfg).get_current_head()
        if current == head:
            return
        # Several processes may open a new store at once (scheduled jobs, scale-out):
        # one migrates, the others wait for it and then find the schema at head.
        with self._migration_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_KEY})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _has_version_table(self, conn: Connection) -> bool:
        from sqlalchemy import inspect

        return inspect(conn).has_table(_VERSION_TABLE)

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.sqlite_path is None:
            yield
            return
        import fcntl

        with open(self.sqlite_path.with_name(self.sqlite_path.name + ".migrate.lock"), "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # blocking: released by the OS if the holder dies
            yield

    def for_worker(self) -> Store:
        """The store for a forked worker process: new connections of its own. The
        parent's pooled connections (and its lock connection) are left untouched."""
        self.engine.dispose(close=False)
        return Store(self.url, migrate=False)

    def dispose(self) -> None:
        self.release_lock()
        self.engine.dispose()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction. Writers are serialized: SQLite by BEGIN IMMEDIATE,
        PostgreSQL by a transaction-scoped advisory lock, so concurrent sources
        (threads or processes) never race on read-then-write upserts."""
        with self._write_lock, self.engine.connect().execution_options(crmsync_write=True) as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7436910022)")
            yield conn

    # locks ---------------------------------------------------------------
    # Two levels. The *store* lock is shared by every run and taken exclusively
    # by whole-store work (and by tests): a run cannot start while it is held.
    # Below it, each source and sink instance has its own exclusive lock, so runs
    # with disjoint sources work side by side on one store while one instance is
    # never driven by two processes at once. All locks die with their process:
    # SQLite uses OS file locks beside the database, PostgreSQL session advisory
    # locks on one held connection.
    def acquire_lock(self, run_id: str, *, wait: bool = False, timeout: float | None = None) -> None:
        """Take the whole store exclusively or raise :class:`LockedError` naming the holder."""
        self.acquire_locks(run_id, [], exclusive_store=True, wait=wait, timeout=timeout)

    def acquire_locks(
        self, run_id: str, names: Sequence[str], *, exclusive_store: bool = False, wait: bool = False, timeout: float | None = None
    ) -> None:
        """Take the store lock (shared unless ``exclusive_store``) and the locks ``names``
        (e.g. ``"source:blogs"``), all or nothing; raise :class:`LockedError` naming the
        holder of the first one that is busy, or wait for it with ``wait``."""
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "started": utcnow().isoformat()}
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = [(STORE_LOCK, exclusive_store)] + [(n, True) for n in sorted(set(names))]
        while True:
            busy = None
            with self._locks_mutex:
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
                info = self.lock_holder(busy)
                who = f"run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, started {info.get('started')})" if info else "another run"
                what = "the store" if busy == STORE_LOCK else busy.replace(":", " ", 1)
                msg = f"{what} ({self.display_url}) is locked by {who}; wait for it to finish or use --wait"
                raise LockedError(msg, lock=busy)
            time.sleep(0.5)

    def try_lock(self, run_id: str, name: str) -> bool:
        """Take one instance lock if it is free (for sinks the run skips when busy)."""
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "started": utcnow().isoformat()}
        with self._locks_mutex:
            return name in self._held or self._try_one(name, True, holder)

    def _lock_path(self, name: str) -> Path:
        assert self.sqlite_path is not None
        if name == STORE_LOCK:
            return self.sqlite_path.with_name(self.sqlite_path.name + ".lock")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        return self.sqlite_path.with_name(f"{self.sqlite_path.name}.{safe}-{digest}.lock")

    def _try_one(self, name: str, exclusive: bool, holder: dict[str, Any]) -> bool:
        if self.dialect == "sqlite":
            if self.sqlite_path is None:  # in-memory: one process only
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
        if self.dialect == "postgresql":
            if self._lock_conn is None:
                self._lock_conn = self.engine.connect()
            sql = _pg_lock_sql(name, "try", exclusive)
            got = self._lock_conn.exec_driver_sql(sql).scalar()
            self._lock_conn.commit()
            if got:
                self._held[name] = exclusive
            return bool(got)
        self._held[name] = None
        return True

    def _release_one(self, name: str) -> None:
        handle = self._held.pop(name, None)
        if self.dialect == "postgresql" and self._lock_conn is not None:
            with contextlib.suppress(Exception):
                self._lock_conn.exec_driver_sql(_pg_lock_sql(name, "unlock", bool(handle)))
                self._lock_conn.commit()
        elif handle is not None:
            handle.close()

    def lock_holder(self, name: str = "store") -> dict[str, Any]:
        """Who holds lock ``name``, as far as the store knows."""
        if self.dialect == "sqlite" and self.sqlite_path is not None:
            with contextlib.suppress(OSError, ValueError):
                return json.loads(self._lock_path(name).read_text() or "{}")
            return {}
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.status == "running").order_by(runs.c.started_at.desc()).limit(1)).first()
        if row is None:
            return {}
        return {"run_id": row.run_id, "pid": row.pid, "host": row.host, "started": _aware(row.started_at).isoformat()}

    def release_lock(self, name: str | None = None) -> None:
        """Release lock ``name``, or every lock this store object holds."""
        with self._locks_mutex:
            for n in [name] if name else list(self._held):
                if n in self._held:
                    self._release_one(n)
            if not self._held and self._lock_conn is not None:
                conn, self._lock_conn = self._lock_conn, None
                with contextlib.suppress(Exception):
                    conn.close()

    # writing a source's batch --------------------------------------------
    def write_batch(
        self,
        source: str,
        records: Sequence[Interaction],
        *,
        identities_: Sequence[Identity] = (),
        rejected: Sequence[Rejected] = (),
        bookmark: dict[str, Any] | None = None,
        run_id: str | None = None,
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
        with self.begin() as conn:
            existing = self._existing(conn, list(latest))
            new_rows, upd_rows = [], []
            for iid, rec in latest.items():
                prev = existing.get(iid)
                if prev is None:
                    new_rows.append(_interaction_row(rec, 1, now, now))
                elif prev[0] != rec.content_hash:
                    upd_rows.append({"b_id": iid, **_interaction_update(rec, prev[1] + 1, now)})
                else:
                    result.unchanged += 1
            if new_rows:
                conn.execute(insert(interactions), new_rows)
            if upd_rows:
                stmt = (
                    update(interactions)
                    .where(interactions.c.interaction_id == _bind("b_id"))
                    .values({k: _bind(k) for k in upd_rows[0] if k != "b_id"})
                )
                conn.execute(stmt, upd_rows)
            result.new, result.updated = len(new_rows), len(upd_rows)
            people = {i.identity_id: i for i in identities_ if i.identity_id}
            for rec in latest.values():
                if rec.author is not None and rec.author.identity_id:
                    people.setdefault(rec.author.identity_id, rec.author)
            result.identities = self._upsert_identities(conn, source, list(people.values()), now)
            for rej in rejected:
                self._quarantine(conn, source, rej, run_id, now)
            result.quarantined = len(rejected)
            if bookmark is not None:
                self._set_bookmark(conn, source, bookmark, run_id, now)
        return result

    def classify(self, records: Sequence[Interaction]) -> dict[str, str]:
        """``new``, ``edit`` or ``same`` per interaction id, without writing (dry runs)."""
        with self.engine.connect() as conn:
            existing = self._existing(conn, [r.interaction_id for r in records])
        out = {}
        for rec in records:
            prev = existing.get(rec.interaction_id)
            out[rec.interaction_id] = "new" if prev is None else ("same" if prev[0] == rec.content_hash else "edit")
        return out

    def _existing(self, conn: Connection, ids: list[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for chunk in _chunks(ids, 500):
            q = select(interactions.c.interaction_id, interactions.c.content_hash, interactions.c.version).where(interactions.c.interaction_id.in_(chunk))
            for row in conn.execute(q):
                found[row[0]] = (row[1], row[2])
        return found

    def _upsert_identities(self, conn: Connection, source: str, people: list[Identity], now: datetime) -> int:
        if not people:
            return 0
        ids = [p.identity_id for p in people]
        current = {}
        for chunk in _chunks(ids, 500):
            for row in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.identity_id.in_(chunk))):
                current[row[0]] = row[1]
        new_rows, upd_rows = [], []
        for person in people:
            old = current.get(person.identity_id)
            if old is None:
                new_rows.append({"identity_id": person.identity_id, "name": person.name, "source": source, "record": person.model_dump_json(), "updated_at": now, "is_contact": bool(person.crm_ids)})
                continue
            fresh = person.model_dump_json()
            if fresh == old:
                continue  # the same person as stored (most authors, most batches): nothing to merge
            merged = _merge_identity(Identity.model_validate_json(old), person)
            record = merged.model_dump_json()
            if record != old:
                upd_rows.append({"b_id": person.identity_id, "name": merged.name, "record": record, "updated_at": now, "is_contact": bool(merged.crm_ids)})
        if new_rows:
            conn.execute(insert(identities), new_rows)
        if upd_rows:
            stmt = update(identities).where(identities.c.identity_id == _bind("b_id")).values(name=_bind("name"), record=_bind("record"), updated_at=_bind("updated_at"), is_contact=_bind("is_contact"))
            conn.execute(stmt, upd_rows)
        return len(new_rows) + len(upd_rows)

    def _quarantine(self, conn: Connection, source: str, rej: Rejected, run_id: str | None, now: datetime) -> None:
        raw_hash = hashlib.sha256(rej.raw).hexdigest() if rej.raw is not None else None
        fingerprint = hashlib.sha256(f"{source}\n{rej.ref}\n{raw_hash}".encode()).hexdigest()
        row = conn.execute(select(quarantine.c.id, quarantine.c.attempts).where(quarantine.c.fingerprint == fingerprint)).first()
        if row is None:
            conn.execute(
                insert(quarantine).values(
                    fingerprint=fingerprint, source=source, ref=rej.ref, reason=rej.reason, error_type=rej.error_type,
                    raw=rej.raw, raw_hash=raw_hash, status="open", attempts=1, run_id=run_id, first_seen=now, last_seen=now,
                )
            )
        else:
            conn.execute(
                update(quarantine).where(quarantine.c.id == row.id).values(
                    reason=rej.reason, error_type=rej.error_type, status="open", attempts=row.attempts + 1, run_id=run_id, last_seen=now
                )
            )

    # bookmarks -----------------------------------------------------------
    def _set_bookmark(self, conn: Connection, source: str, state: dict[str, Any], run_id: str | None, now: datetime) -> None:
        data = json.dumps(state, sort_keys=True, default=str)
        done = conn.execute(update(bookmarks).where(bookmarks.c.source == source).values(state=data, run_id=run_id, updated_at=now))
        if done.rowcount == 0:
            conn.execute(insert(bookmarks).values(source=source, state=data, run_id=run_id, updated_at=now))

    def get_bookmark(self, source: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(bookmarks.c.state).where(bookmarks.c.source == source)).scalar()
        return None if value is None else json.loads(value)

    def set_bookmark(self, source: str, state: dict[str, Any], run_id: str | None = None) -> None:
        with self.begin() as conn:
            self._set_bookmark(conn, source, state, run_id, utcnow())

    def reset_bookmark(self, source: str) -> None:
        with self.begin() as conn:
            conn.execute(delete(bookmarks).where(bookmarks.c.source == source))

    def all_bookmarks(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {
                row.source: {"state": json.loads(row.state), "updated_at": _aware(row.updated_at).isoformat()}
                for row in conn.execute(select(bookmarks))
            }

    # sinks ---------------------------------------------------------------
    def _pending_filter(self, sink: str, sources: Sequence[str] | None):  # noqa: ANN202
        join = interactions.outerjoin(deliveries, and_(deliveries.c.sink == sink, deliveries.c.interaction_id == interactions.c.interaction_id))
        cond = or_(deliveries.c.version.is_(None), deliveries.c.version < interactions.c.version)
        if sources is not None:
            cond = and_(cond, interactions.c.source.in_(list(sources)))
        return join, cond

    def pending(self, sink: str, *, sources: Sequence[str] | None = None, after: str = "", before: str | None = None, limit: int = 500) -> list[PendingItem]:
        """The next page of interaction versions ``sink`` has not received, by id
        (ids after ``after`` and, if given, below ``before``)."""
        join, cond = self._pending_filter(sink, sources)
        if before is not None:
            cond = and_(cond, interactions.c.interaction_id < before)
        q = (
            select(interactions.c.interaction_id, interactions.c.version, interactions.c.record, deliveries.c.version, deliveries.c.external_id)
            .select_from(join)
            .where(and_(cond, interactions.c.interaction_id > after))
            .order_by(interactions.c.interaction_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            # parsed row by row: the page's raw JSON is not all held beside its models
            return [PendingItem(Interaction.model_validate_json(r[2], context=STORED), r[1], r[3], r[4]) for r in conn.execute(q)]

    def backlog(self, sink: str, sources: Sequence[str] | None = None) -> int:
        """How many interaction versions ``sink`` has not received."""
        join, cond = self._pending_filter(sink, sources)
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(join).where(cond)).scalar() or 0

    def record_receipts(self, sink: str, receipts: Iterable[Receipt], run_id: str | None = None) -> int:
        """Write ledger entries for durable deliveries (upsert by sink and id)."""
        latest: dict[str, Receipt] = {}
        for r in receipts:
            latest[r.interaction_id] = r
        if not latest:
            return 0
        now = utcnow()
        with self.begin() as conn:
            have = set()
            for chunk in _chunks(list(latest), 500):
                q = select(deliveries.c.interaction_id).where(and_(deliveries.c.sink == sink, deliveries.c.interaction_id.in_(chunk)))
                have.update(conn.execute(q).scalars())
            stmt = (
                update(deliveries)
                .where(and_(deliveries.c.sink == _bind("b_sink"), deliveries.c.interaction_id == _bind("b_id")))
                .values(version=_bind("version"), external_id=_bind("external_id"), run_id=_bind("run_id"), delivered_at=_bind("delivered_at"))
            )
            # in slices, one transaction: a file set confirms 50,000 receipts at once, and
            # their parameter rows all at once were the sink phase's largest allocation
            for chunk in _chunks(list(latest.values()), 2000):
                new_rows = [
                    {"sink": sink, "interaction_id": r.interaction_id, "version": r.version, "external_id": r.external_id, "run_id": run_id, "delivered_at": now}
                    for r in chunk if r.interaction_id not in have
                ]
                upd_rows = [
                    {"b_sink": sink, "b_id": r.interaction_id, "version": r.version, "external_id": r.external_id, "run_id": run_id, "delivered_at": now}
                    for r in chunk if r.interaction_id in have
                ]
                if new_rows:
                    conn.execute(insert(deliveries), new_rows)
                if upd_rows:
                    conn.execute(stmt, upd_rows)
        return len(latest)

    def reset_ledger(self, sink: str) -> int:
        """Forget what ``sink`` received, so it gets the whole history again."""
        with self.begin() as conn:
            return conn.execute(delete(deliveries).where(deliveries.c.sink == sink)).rowcount

    def ledger(self, sink: str) -> dict[str, tuple[int, str | None]]:
        """``interaction_id -> (version, external_id)`` for ``sink``."""
        with self.engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(select(deliveries.c.interaction_id, deliveries.c.version, deliveries.c.external_id).where(deliveries.c.sink == sink))}

    def ledger_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(deliveries.c.sink, func.count()).group_by(deliveries.c.sink)).all())

    # reading -------------------------------------------------------------
    def iter_interactions(
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
        in pages, filtered as :meth:`iter_interactions` (and to the authors
        ``author_ids``, if given); reads no more of each record."""
        q = _written_before_unlinked(select(interactions.c.interaction_id, interactions.c.record).where(interactions.c.author_id.is_not(None)), updated_before, unlinked_only)
        queries = [q] if author_ids is None else [q.where(interactions.c.author_id.in_(chunk)) for chunk in _chunks(sorted(set(author_ids)), 500)]
        for query in queries:
            for rows in self._pages_by_id(query, page):
                for iid, record in rows:
                    author = json.loads(record).get("author")
                    if author:
                        yield iid, Identity.model_validate(author)

    def identities_by_keys(self, keys: Iterable[str]) -> set[str]:
        """The identity ids that own any of ``keys`` (``kind:value``, as :meth:`cluster` writes them)."""
        out: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(keys)), 500):
                out.update(conn.execute(select(identity_keys.c.identity_id).where(identity_keys.c.key.in_(chunk))).scalars())
        return out

    def _pages_by_id(self, q, page: int) -> Iterator[list[Any]]:  # noqa: ANN001
        """Rows of ``q`` (its first column the interaction id) in pages by id, each page
        read on a connection of its own (a long scan holds no read transaction)."""
        after = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(q.where(interactions.c.interaction_id > after).order_by(interactions.c.interaction_id).limit(page)).all()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def get_interaction(self, interaction_id: str) -> tuple[Interaction, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(interactions.c.record, interactions.c.version).where(interactions.c.interaction_id == interaction_id)).first()
        return None if row is None else (Interaction.model_validate_json(row[0], context=STORED), row[1])

    def iter_identities(self) -> Iterator[Identity]:
        with self.engine.connect() as conn:
            for row in conn.execute(select(identities.c.record).order_by(identities.c.identity_id)):
                yield Identity.model_validate_json(row[0])

    def response_queue(self, *, now: datetime | None = None, soon_hours: float = 24, limit: int = 20) -> dict[str, Any]:
        """Interactions that need a response: overdue and due soon."""
        from datetime import timedelta

        now = now or utcnow()
        soon = now + timedelta(hours=soon_hours)
        base = and_(interactions.c.needs_response.is_(True), interactions.c.due_at.is_not(None))
        cols = [interactions.c.interaction_id, interactions.c.source, interactions.c.kind, interactions.c.priority, interactions.c.due_at, interactions.c.native_id]
        with self.engine.connect() as conn:
            overdue_n = conn.execute(select(func.count()).select_from(interactions).where(and_(base, interactions.c.due_at < now))).scalar() or 0
            soon_n = conn.execute(select(func.count()).select_from(interactions).where(and_(base, interactions.c.due_at >= now, interactions.c.due_at < soon))).scalar() or 0
            rows = conn.execute(select(*cols).where(and_(base, interactions.c.due_at < soon)).order_by(interactions.c.due_at).limit(limit)).all()
        return {
            "overdue": overdue_n,
            "due_soon": soon_n,
            "next": [{"interaction_id": r[0], "source": r[1], "kind": r[2], "priority": r[3], "due_at": _aware(r[4]).isoformat(), "native_id": r[5], "overdue": _aware(r[4]) < now} for r in rows],
        }

    def author_stats(self) -> list[tuple[str, int, int, int, float | None]]:
        """Per author: (identity_id, interactions, engagement, mentions, mean sentiment)."""
        q = (
            select(interactions.c.author_id, func.count(), func.coalesce(func.sum(interactions.c.engagement), 0), func.coalesce(func.sum(interactions.c.mention_count), 0), func.avg(interactions.c.sentiment_score))
            .where(interactions.c.author_id.is_not(None))
            .group_by(interactions.c.author_id)
        )
        with self.engine.connect() as conn:
            return [(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]) if r[4] is not None else None) for r in conn.execute(q)]

    def update_identities(self, people: list[Identity]) -> None:
        """Replace identity records (influence scores, flags)."""
        now = utcnow()
        with self.begin() as conn:
            for chunk in _chunks(people, 500):
                stmt = update(identities).where(identities.c.identity_id == _bind("b_id")).values(record=_bind("record"), updated_at=_bind("updated_at"))
                conn.execute(stmt, [{"b_id": p.identity_id, "record": p.model_dump_json(), "updated_at": now} for p in chunk])

    def identities_by_id(self, ids: list[str]) -> dict[str, Identity]:
        out: dict[str, Identity] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids)), 500):
                for row in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.identity_id.in_(chunk))):
                    out[row[0]] = Identity.model_validate_json(row[1])
        return out

    def counts(self) -> dict[str, Any]:
        """Totals for ``crmsync status``."""
        with self.engine.connect() as conn:
            per_source = dict(conn.execute(select(interactions.c.source, func.count()).group_by(interactions.c.source)).all())
            n_ident = conn.execute(select(func.count()).select_from(identities)).scalar() or 0
            q_open = dict(conn.execute(select(quarantine.c.source, func.count()).where(quarantine.c.status == "open").group_by(quarantine.c.source)).all())
        return {"interactions": per_source, "identities": n_ident, "quarantine_open": q_open}

    # identity resolution -------------------------------------------------
    def contacts(self, *, changed_since: datetime | None = None) -> Iterator[Identity]:
        """Identities that are CRM records (have CRM ids), or those written since ``changed_since``."""
        q = select(identities.c.record).where(identities.c.is_contact.is_(True))
        if changed_since is not None:
            q = q.where(identities.c.updated_at >= changed_since)
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                yield Identity.model_validate_json(row[0])

    def count_contacts(self, *, changed_since: datetime | None = None) -> int:
        """How many identities are CRM records (written since ``changed_since``, if given)."""
        q = select(func.count()).select_from(identities).where(identities.c.is_contact.is_(True))
        if changed_since is not None:
            q = q.where(identities.c.updated_at >= changed_since)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar() or 0

    def contacts_changed_since(self, when: datetime) -> int:
        return self.count_contacts(changed_since=when)

    def decisions(self) -> dict[str, dict[str, str]]:
        """author identity_id -> {contact identity_id: accepted|rejected}."""
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            q = select(identity_candidates.c.author_id, identity_candidates.c.contact_id, identity_candidates.c.status).where(identity_candidates.c.status.in_(["accepted", "rejected"]))
            for a, c, st in conn.execute(q):
                out.setdefault(a, {})[c] = st
        return out

    def add_candidates(self, items: list[dict[str, Any]]) -> int:
        """Queue candidates for review; a pair already queued or decided is left alone."""
        if not items:
            return 0
        now = utcnow()
        added = 0
        with self.begin() as conn:
            for it in items:
                exists = conn.execute(select(identity_candidates.c.id).where(and_(identity_candidates.c.author_id == it["author_id"], identity_candidates.c.contact_id == it["contact_id"]))).first()
                if exists:
                    continue
                conn.execute(insert(identity_candidates).values(status="pending", created_at=now, applied=False, **it))
                added += 1
        return added

    def candidates(self, status: str | None = "pending") -> list[dict[str, Any]]:
        q = select(identity_candidates).order_by(identity_candidates.c.confidence.desc(), identity_candidates.c.id)
        if status:
            q = q.where(identity_candidates.c.status == status)
        with self.engine.connect() as conn:
            return [
                {**dict(r._mapping), "evidence": json.loads(r.evidence), "author": json.loads(r.author), "created_at": _aware(r.created_at).isoformat(), "decided_at": _aware(r.decided_at).isoformat() if r.decided_at else None}
                for r in conn.execute(q)
            ]

    def decide(self, candidate_id: int, verdict: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            row = conn.execute(select(identity_candidates).where(identity_candidates.c.id == candidate_id)).first()
            if row is None:
                return None
            conn.execute(update(identity_candidates).where(identity_candidates.c.id == candidate_id).values(status=verdict, decided_at=utcnow(), applied=False))
            if verdict == "accepted":
                # one author links to one contact: the other proposals for it are rejected
                conn.execute(
                    update(identity_candidates)
                    .where(and_(identity_candidates.c.author_id == row.author_id, identity_candidates.c.id != candidate_id, identity_candidates.c.status == "pending"))
                    .values(status="rejected", decided_at=utcnow())
                )
            return dict(row._mapping)

    def unapplied_decisions(self) -> int:
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(identity_candidates).where(and_(identity_candidates.c.status == "accepted", identity_candidates.c.applied.is_(False)))
            return conn.execute(q).scalar() or 0

    def mark_decisions_applied(self) -> None:
        with self.begin() as conn:
            conn.execute(update(identity_candidates).where(identity_candidates.c.status == "accepted").values(applied=True))

    def cluster(self, keys_by_author: dict[str, list[str]]) -> dict[str, str]:
        """One identity per person: author identity_id -> cluster identity_id.

        An author whose key (canonical email, URL, handle) was seen before joins
        that identity; its other keys join it too.
        """
        all_keys = sorted({k for ks in keys_by_author.values() for k in ks})
        out: dict[str, str] = {}
        with self.begin() as conn:
            known: dict[str, str] = {}
            for chunk in _chunks(all_keys, 500):
                for key, ident in conn.execute(select(identity_keys.c.key, identity_keys.c.identity_id).where(identity_keys.c.key.in_(chunk))):
                    known[key] = ident
            new_rows = []
            for author_id, keys in keys_by_author.items():
                owner = next((known[k] for k in keys if k in known), author_id)
                out[author_id] = owner
                for k in keys:
                    if k not in known:
                        known[k] = owner
                        new_rows.append({"key": k, "identity_id": owner})
            if new_rows:
                conn.execute(insert(identity_keys), new_rows)
        return out

    # quarantine ----------------------------------------------------------
    def quarantine_items(self, *, source: str | None = None, status: str | None = "open", limit: int | None = None) -> list[QuarantineItem]:
        q = select(quarantine).order_by(quarantine.c.id)
        if source:
            q = q.where(quarantine.c.source == source)
        if status:
            q = q.where(quarantine.c.status == status)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_qitem(r) for r in conn.execute(q)]

    def quarantine_item(self, item_id: int) -> QuarantineItem | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == item_id)).first()
        return None if row is None else _qitem(row)

    def set_quarantine_status(self, item_id: int, status: str, reason: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "last_seen": utcnow()}
        if reason is not None:
            values["reason"] = reason
        with self.begin() as conn:
            conn.execute(update(quarantine).where(quarantine.c.id == item_id).values(**values))

    # runs ----------------------------------------------------------------
    def start_run(self, run_id: str, command: str) -> None:
        with self.begin() as conn:
            # a run that was killed never finished: say so
            conn.execute(update(runs).where(runs.c.status == "running").values(status="abandoned"))
            conn.execute(insert(runs).values(run_id=run_id, started_at=utcnow(), status="running", pid=os.getpid(), host=socket.gethostname(), command=command))

    def finish_run(self, run_id: str, status: str, report: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(finished_at=utcnow(), status=status, report=json.dumps(report, default=str)))

    def recent_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit)).all()
        return [
            {
                "run_id": r.run_id,
                "started_at": _aware(r.started_at).isoformat(),
                "finished_at": _aware(r.finished_at).isoformat() if r.finished_at else None,
                "status": r.status,
                "report": json.loads(r.report) if r.report else None,
            }
            for r in rows
        ]


def _written_before_unlinked(q, updated_before: datetime | None, unlinked_only: bool):  # noqa: ANN001, ANN202
    """``q`` narrowed to interactions last written before ``updated_before`` (if given)
    and, with ``unlinked_only``, to those whose author is not a CRM contact."""
    if updated_before is not None:
        q = q.where(interactions.c.updated_at < updated_before)
    if unlinked_only:
        contact = select(identities.c.identity_id).where(and_(identities.c.identity_id == interactions.c.author_id, identities.c.is_contact.is_(True)))
        q = q.where(and_(interactions.c.author_id.is_not(None), ~contact.exists()))
    return q


def _bind(name: str):  # noqa: ANN202
    from sqlalchemy import bindparam

    return bindparam(name)


def _interaction_row(rec: Interaction, version: int, first_seen: datetime, now: datetime) -> dict[str, Any]:
    return {
        "interaction_id": rec.interaction_id,
        "first_seen": first_seen,
        **_interaction_update(rec, version, now),
    }


def _interaction_update(rec: Interaction, version: int, now: datetime) -> dict[str, Any]:
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


def _merge_identity(old: Identity, new: Identity) -> Identity:
    data = old.model_dump()
    for key in ("emails", "verified_emails", "handles", "profile_urls"):
        seen = list(data[key])
        for v in getattr(new, key):
            if v not in seen:
                seen.append(v)
        data[key] = seen
    data["crm_ids"] = {**data["crm_ids"], **new.crm_ids}
    for key in ("name", "company"):
        if getattr(new, key):
            data[key] = getattr(new, key)
    data["removed"] = new.removed
    return Identity.model_validate(data)


def _qitem(r: Any) -> QuarantineItem:
    return QuarantineItem(
        id=r.id, source=r.source, ref=r.ref, reason=r.reason, error_type=r.error_type, raw=r.raw, status=r.status,
        attempts=r.attempts, first_seen=_aware(r.first_seen), last_seen=_aware(r.last_seen), run_id=r.run_id,
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # let SQLAlchemy's "begin" event issue BEGIN / BEGIN IMMEDIATE itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        # writers take the write lock up front (no failed lock upgrades); readers don't block
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crmsync_write") else "BEGIN")


__all__ = ["BatchResult", "FatalError", "PendingItem", "QuarantineItem", "Store"]


STORE_LOCK = "store"
#: The newest migration in crmsync/migrations/versions (a test checks they agree).
SCHEMA_HEAD = "0004"
_VERSION_TABLE = "crmsync_alembic_version"
_PG_STORE_KEY = 7436910021
_PG_MIGRATE_KEY = 7436910023
_PG_INSTANCE_CLASS = 743691


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
