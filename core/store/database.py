"""The store's database: the engine, the schema's migrations and the write transaction.

Every other part of the store (``interactions``, ``identities``, ``ledger``,
``quarantine``, ``runs``, ``bookmarks``, ``locks``) runs its SQL through one
:class:`Database`. SQLite (the default, one file) and PostgreSQL (shared by a
team) are tested; the schema is created and upgraded by Alembic on open.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Table, and_, bindparam, create_engine, event, insert, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError

from ..contract.errors import ConfigError, LockedError
from ..host.secrets import redact_url, url_password

#: The newest migration in crmsync/store/migrations/versions (a test checks they agree).
SCHEMA_HEAD = "0006"
VERSION_TABLE = "crmsync_alembic_version"
_PG_WRITE_KEY = 7436910022
_PG_MIGRATE_KEY = 7436910023


#: Seconds a write waits for another process's transaction before the run gives up (exit 3).
LOCK_TIMEOUT = 60.0


class Database:
    """One store's engine. Thread-safe: each call takes a connection of its own."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        parsed = _parse(url)
        self.dialect = parsed.get_backend_name()
        self.sqlite_path: Path | None = None
        # how long a write waits for another process's transaction: ?timeout=SECONDS in the URL
        try:
            self.lock_timeout = float(parsed.query.get("timeout", LOCK_TIMEOUT))  # type: ignore[arg-type]
        except ValueError:
            msg = f"store URL {redact_url(url)!r}: 'timeout' must be a number of seconds"
            raise ConfigError(msg) from None
        self._holding_migration_lock = False
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                self.sqlite_path = Path(db)
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                if not self.sqlite_path.is_file() or self.sqlite_path.stat().st_size == 0:
                    # a new store: whoever creates it holds the migration lock until its schema
                    # is in place, so another process never sees it half made
                    with self._migration_lock():
                        self._holding_migration_lock = True
                        try:
                            self._refuse_empty()
                            self._open_sqlite(parsed, migrate)
                        finally:
                            self._holding_migration_lock = False
                    self._write_lock = threading.Lock()
                    return
            self._open_sqlite(parsed, False)
        else:
            args = {"options": f"-c lock_timeout={int(self.lock_timeout * 1000)}"} if self.dialect == "postgresql" else {}
            try:
                self.engine = create_engine(parsed.difference_update_query(["timeout"]), pool_pre_ping=True, connect_args=args)
            except ModuleNotFoundError as exc:
                msg = f"store URL {redact_url(url)!r} needs the database driver {exc.name!r}: pip install 'crmsync[postgres]'"
                raise ConfigError(msg) from None
        # one writer at a time in this process; other processes queue on the database's own lock
        self._write_lock = threading.Lock()
        if migrate:
            self.migrate()

    def _open_sqlite(self, parsed: Any, migrate: bool) -> None:
        self.engine = create_engine(parsed.difference_update_query(["timeout"]), connect_args={"timeout": self.lock_timeout})
        _sqlite_setup(self.engine, self.lock_timeout)
        if migrate:
            self.migrate()

    def _refuse_empty(self) -> None:
        """Under the migration lock: a store file of 0 bytes nobody is creating was truncated."""
        if self.sqlite_path is not None and self.sqlite_path.is_file() and self.sqlite_path.stat().st_size == 0:
            msg = (
                f"the store {self.sqlite_path} is an empty file, not a crmsync store: it was truncated, or is not the file meant. "
                "Restore it from a backup; or, to start afresh (every record is read and delivered again), delete it"
            )
            raise ConfigError(msg)

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def connect(self) -> Connection:
        """A connection for reading (``with db.connect() as conn``)."""
        return self.engine.connect()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction. Writers are serialized: SQLite by BEGIN IMMEDIATE,
        PostgreSQL by a transaction-scoped advisory lock, so concurrent sources
        (threads or processes) never race on read-then-write upserts."""
        try:
            with self._write_lock, self.engine.connect().execution_options(crmsync_write=True) as conn, conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_KEY})")
                yield conn
        except OperationalError as exc:
            if not _is_lock_timeout(exc):
                raise
            msg = (
                f"the store {self.display_url} stayed locked by another process for {self.lock_timeout:g} s "
                "(another crmsync run, or a tool holding a transaction open): try again when it is done, "
                "or raise the wait with ?timeout=SECONDS in the store URL"
            )
            raise LockedError(msg) from None

    def after_fork(self) -> None:
        """In a forked worker: connections of its own from now on (the parent's pooled
        ones are left to the parent, as SQLAlchemy advises), and a fresh write lock
        (another thread may have held the parent's at the fork)."""
        self.engine.dispose(close=False)
        self._write_lock = threading.Lock()

    def dispose(self) -> None:
        self.engine.dispose()

    # schema --------------------------------------------------------------
    def alembic_config(self):  # noqa: ANN201
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "crmsync.store:migrations")
        return cfg

    def migrate(self) -> None:
        """Create or upgrade the store's schema to the latest migration."""
        # the common case, a store at head, without importing Alembic (a third of start-up)
        try:
            with self.engine.connect() as conn:
                current = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() if self._has_version_table(conn) else None
        except Exception as exc:  # noqa: BLE001
            msg = f"cannot open the store {self.display_url}: {first_line(exc)}"
            raise ConfigError(msg) from None
        if current == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.script import ScriptDirectory

        cfg = self.alembic_config()
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

        return inspect(conn).has_table(VERSION_TABLE)

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.sqlite_path is None or self._holding_migration_lock:
            yield
            return
        import fcntl

        with open(self.sqlite_path.with_name(self.sqlite_path.name + ".migrate.lock"), "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # blocking: released by the OS if the holder dies
            yield


def _parse(url: str) -> Any:
    """``make_url(url)``, or a :class:`ConfigError` that shows the URL with its password masked."""
    password = url_password(url)
    if password is not None and any(c in password for c in "@/?#"):
        msg = (
            f"store URL {redact_url(url)!r}: its password holds one of @ / ? # unencoded, which ends the user part early; "
            "percent-encode them (@ is %40, / is %2F, ? is %3F, # is %23)"
        )
        raise ConfigError(msg)
    try:
        return make_url(url)
    except Exception:  # noqa: BLE001 - its message may quote the URL whole
        msg = f"store URL {redact_url(url)!r} is not a SQLAlchemy URL; e.g. sqlite:///path/to/crmsync.db or postgresql+psycopg://user:PASSWORD@host/db"
        raise ConfigError(msg) from None


def check_url(url: str) -> str:
    """Check a store URL without connecting: it parses, names a dialect SQLAlchemy
    knows and a driver that is installed. Returns the dialect's name; raises
    :class:`ConfigError` saying what to write instead."""
    parsed = _parse(url)
    try:
        dialect = parsed.get_dialect()
    except Exception:  # noqa: BLE001
        hint = " (PostgreSQL is postgresql+psycopg://...)" if parsed.drivername.startswith("postgres") else ""
        msg = f"store URL {redact_url(url)!r}: SQLAlchemy has no database dialect {parsed.drivername!r}{hint}"
        raise ConfigError(msg) from None
    try:
        dialect.import_dbapi()
    except ModuleNotFoundError as exc:
        hint = "pip install 'crmsync[postgres]'" if parsed.get_backend_name() == "postgresql" else ("pip install 'crmsync[mysql]'" if parsed.get_backend_name() in ("mysql", "mariadb") else f"pip install {exc.name}")
        msg = f"store URL {redact_url(url)!r} needs the database driver {exc.name!r}: {hint}"
        raise ConfigError(msg) from None
    return parsed.get_backend_name()


def probe(url: str) -> str:
    """Check that the store can be opened, writing nothing: a SQLite file's directory
    is writable (or can be made), another database accepts a connection. Returns a
    line saying so; raises :class:`ConfigError` with the database's reason."""
    import os

    backend = check_url(url)
    parsed = make_url(url)
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return "store: in memory"
        path = Path(parsed.database).resolve()
        existing = next(p for p in [path.parent, *path.parent.parents] if p.exists())
        if not os.access(existing, os.W_OK):
            msg = f"store {path}: {existing} is not writable"
            raise ConfigError(msg)
        return f"store: {path} ({'exists' if path.exists() else 'made on the first run'})"
    engine = create_engine(url, pool_pre_ping=False)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001
        msg = f"cannot open the store {redact_url(url)}: {first_line(getattr(exc, 'orig', None) or exc)}"
        raise ConfigError(msg) from None
    finally:
        engine.dispose()
    return f"store: {redact_url(url)} reachable"


# helpers the parts share ------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """``value`` in UTC (SQLite returns naive datetimes)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def bind(name: str):  # noqa: ANN201
    """A bound parameter for executemany updates (``WHERE id = :b_id``)."""
    return bindparam(name)


#: compiled bulk statements: (dialect, kind, table, columns, keys) -> (SQL, parameter order, datetime positions)
_BULK: dict[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], tuple[str, list[str], list[int]]] = {}


def write_rows(conn: Connection, table: Table, rows: list[dict[str, Any]], *, where: tuple[str, ...] = ()) -> None:
    """``INSERT`` ``rows`` into ``table`` (or, with ``where``, ``UPDATE`` the row each
    names by those key columns) as one executemany. Every row has the same keys.

    On SQLite the statement is compiled once per table and columns and the rows go to
    the driver as tuples: SQLAlchemy's per-row parameter processing was a third of a
    batch write. Datetimes are stored exactly as SQLAlchemy's SQLite ``DateTime``
    stores them, so both paths read back the same. Other databases take SQLAlchemy's
    own executemany (its drivers batch on their side).
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name != "sqlite":
        conn.execute(_bulk_statement(table, columns, where), _renamed(rows, where) if where else rows)
        return
    cache_key = ("sqlite", "update" if where else "insert", table.name, columns, where)
    plan = _BULK.get(cache_key)
    if plan is None:
        compiled = _bulk_statement(table, columns, where).compile(dialect=conn.dialect, column_keys=[c for c in columns if c not in where])
        order = [name[2:] if name.startswith("w_") and name[2:] in where else name for name in compiled.positiontup or ()]
        stamps = [i for i, name in enumerate(order) if isinstance(table.c[name].type, DateTime)]
        plan = _BULK[cache_key] = (compiled.string, order, stamps)
    sql, order, stamps = plan
    params = []
    text: dict[int, str] = {}  # by object: a batch's rows share their write time (rows keep each alive)
    for row in rows:
        values = [row[c] for c in order]
        for i in stamps:
            v = values[i]
            if v is not None:
                s = text.get(id(v))
                if s is None:
                    s = text[id(v)] = f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
                values[i] = s
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


def _bulk_statement(table: Table, columns: tuple[str, ...], where: tuple[str, ...]) -> Any:
    if not where:
        return insert(table)
    cond = and_(*(table.c[k] == bindparam(f"w_{k}") for k in where))
    return update(table).where(cond).values({c: bindparam(c) for c in columns if c not in where})


def _renamed(rows: list[dict[str, Any]], where: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{(f"w_{k}" if k in where else k): v for k, v in row.items()} for row in rows]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_lock_timeout(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "lock timeout" in text or getattr(exc.orig, "sqlstate", None) == "55P03"


def _sqlite_setup(engine: Engine, lock_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # let SQLAlchemy's "begin" event issue BEGIN / BEGIN IMMEDIATE itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        # writers take the write lock up front (no failed lock upgrades); readers don't block
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crmsync_write") else "BEGIN")
