"""The ``sql`` sink: interactions into a SQL database, upserted by interaction id.

Each batch is one transaction of native upserts (PostgreSQL and SQLite
``INSERT ... ON CONFLICT DO UPDATE``, MySQL/MariaDB ``ON DUPLICATE KEY UPDATE``);
receipts follow the commit, so the ledger never runs ahead of the database, and a
batch sent again after a crash upserts to the same rows.

A row the database refuses (a constraint, a value it cannot take) is found by
halving the batch until the refused rows stand alone (each part its own
transaction); those are reported with the database's message and quarantined,
the rest lands. Text longer than its column is cut with a marker and counted; NUL
characters are removed for PostgreSQL, which cannot store them in text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crmsync
from sqlalchemy import DateTime

from .tables import TRUNCATION_MARKER, author_rows, interaction_row, own_tables, utcnow

log = logging.getLogger("crmsync.sinks.sql")


class SqlSink(crmsync.Sink):
    """Interactions, their authors and CRM links into tables of any SQL database."""

    name = "sql"
    description = "Interactions into a SQL database (PostgreSQL, MySQL/MariaDB, SQLite): crmsync's own tables, upserted by interaction id."
    parallel = True
    config_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "secret": True, "description": "SQLAlchemy URL of the database, as a secret reference (env:NAME or file:PATH): it holds the password. E.g. postgresql+psycopg://crm:PW@db/crm."},
            "path": {"type": "string", "description": "A SQLite file instead of url (relative to the config file)."},
            "table_prefix": {"type": "string", "default": "crmsync_", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "Prefix of the sink's tables: PREFIXinteractions, PREFIXauthors, PREFIXcontact_links."},
            "db_schema": {"type": "string", "description": "Database schema of the tables (PostgreSQL), e.g. crm_sync."},
            "connect_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10, "description": "Seconds to wait for a connection."},
            "mode": {"enum": ["own", "existing"], "default": "own", "description": "own: crmsync's tables, created and extended by the sink; existing: tables that already exist, filled by the mapping in tables."},
            "tables": {
                "type": "object",
                "description": "mode = existing: per table, the key column (primary key or unique) and per column a field or expression (see the README).",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "description": "The column that identifies a row (default: the first mapped column)."},
                        "columns": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
                    },
                    "required": ["columns"],
                    "additionalProperties": False,
                },
                "default": {},
            },
            "timezone": {"type": "string", "default": "UTC", "description": "Time zone of timestamp columns without one (existing tables), e.g. Europe/Berlin."},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 500, "description": "Rows per transaction."},
            "copy_from": {"type": "integer", "minimum": 1, "default": 2000, "description": "PostgreSQL: a batch of at least this many rows is loaded with COPY into a staging table and merged with one INSERT ... SELECT ... ON CONFLICT (faster for large batches; see bench/README.md)."},
        },
        "oneOf": [{"required": ["url"]}, {"required": ["path"]}],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from .mapping import parse

        c = self.config
        if c["mode"] == "existing" and not c["tables"]:
            msg = f"sink {self.instance}: mode = \"existing\" needs tables (a key column and columns per target table)"
            raise crmsync.ConfigError(msg)
        if c["mode"] == "own" and c["tables"]:
            msg = f"sink {self.instance}: tables are for mode = \"existing\"; the own mode writes crmsync's tables"
            raise crmsync.ConfigError(msg)
        self.maps = parse(c["tables"])
        try:
            self.tz = ZoneInfo(c["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"sink {self.instance}: unknown timezone {c['timezone']!r} (an IANA name such as UTC or Europe/Berlin)"
            raise crmsync.ConfigError(msg) from None
        self.batch_size = c["batch_size"]  # an instance attribute: the runner pages by it
        self.engine: Any = None
        self.truncated: dict[str, int] = {}
        #: (table, column) -> the length of its text type, as the database has it
        self.limits: dict[tuple[str, str], int] = {}
        self._fit_plans: dict[str, list[tuple[str, int | None]]] = {}
        self._statements: dict[tuple[str, tuple[str, ...]], tuple[str, list[str], dict[str, str]]] = {}

    # connecting -----------------------------------------------------------------
    def _url(self) -> str:
        if self.config.get("path"):
            path = Path(self.config["path"]).expanduser()
            if not path.is_absolute():
                path = self.context.config_dir / path
            path.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{path}"
        return self.config["url"].get()

    def _connect(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        url = self._url()
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            msg = f"sink {self.instance}: 'url' is not a SQLAlchemy URL ({type(exc).__name__})"
            raise crmsync.ConfigError(msg) from None
        backend = parsed.get_backend_name()
        args: dict[str, Any] = {}
        if backend == "sqlite":
            args = {"timeout": self.config["connect_timeout"]}
        elif backend in ("postgresql", "mysql", "mariadb"):
            args = {"connect_timeout": int(self.config["connect_timeout"])}
        try:
            return create_engine(parsed, connect_args=args, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            msg = f"sink {self.instance}: the database driver {exc.name!r} is not installed (PostgreSQL: pip install 'crmsync[postgres]'; MySQL/MariaDB: pip install pymysql)"
            raise crmsync.ConfigError(msg) from None

    def open(self) -> None:
        from sqlalchemy.exc import OperationalError

        self.engine = self._connect()
        self.dialect = self.engine.dialect.name
        try:
            with self.engine.begin() as conn:
                if self.config["mode"] == "own":
                    self._open_own(conn)
                else:
                    self._open_existing(conn)
        except OperationalError as exc:
            msg = f"sink {self.instance}: cannot reach the database: {_first_line(exc)}"
            raise crmsync.RetriableError(msg) from None

    def _open_own(self, conn: Any) -> None:
        md, self.t_interactions, self.t_authors, self.t_links = own_tables(self.config["table_prefix"])
        if self.config.get("db_schema"):
            for t in md.tables.values():
                t.schema = self.config["db_schema"]
        md.create_all(conn)
        self._add_missing_columns(conn, md)
        self.limits = _text_limits(conn, md)

    def _open_existing(self, conn: Any) -> None:
        from sqlalchemy import MetaData, Table, inspect

        from .mapping import problems

        schema = self.config.get("db_schema")
        errors, _warnings = problems(self.maps, inspect(conn), schema)
        if errors:
            msg = f"sink {self.instance}: the mapping does not fit the database ({len(errors)} problem(s); crmsync validate lists them): {errors[0]}"
            raise crmsync.FatalError(msg)
        md = MetaData()
        self.targets = [(m, Table(m.name, md, autoload_with=conn, schema=schema)) for m in self.maps]
        self.reflected = {m.name: {c["name"]: c for c in inspect(conn).get_columns(m.name, schema=schema)} for m in self.maps}
        self.limits = _text_limits(conn, md)
        self.t_interactions = self.targets[0][1]

    def check(self) -> list[str]:
        """Connect and check, writing nothing: own tables, which exist or will be made;
        existing tables, the mapping against what the database reflects (errors exit
        ``crmsync validate`` with 2, warnings are printed)."""
        from sqlalchemy import inspect
        from sqlalchemy.exc import OperationalError

        from .mapping import problems

        engine = self._connect()
        try:
            with engine.connect() as conn:
                inspector = inspect(conn)
                schema = self.config.get("db_schema")
                if self.config["mode"] == "existing":
                    errors, warnings = problems(self.maps, inspector, schema)
                    if errors:
                        msg = "the mapping does not fit the database:\n  " + "\n  ".join(errors)
                        raise crmsync.ConfigError(msg)
                    return [f"{engine.dialect.name}: mapping ok for {', '.join(m.name for m in self.maps)}", *warnings]
                names = set(inspector.get_table_names(schema=schema))
                prefix = self.config["table_prefix"]
                mine = [f"{prefix}{n}" for n in ("interactions", "authors", "contact_links")]
                have = [n for n in mine if n in names]
                missing = [n for n in mine if n not in names]
                state = f"tables {', '.join(have)} exist" if have else "no tables yet"
                return [f"{engine.dialect.name}: {state}" + (f"; {', '.join(missing)} made on the first run" if missing else "")]
        except OperationalError as exc:
            msg = f"cannot reach the database: {_first_line(exc)}"
            raise crmsync.ConfigError(msg) from None
        finally:
            engine.dispose()

    def _add_missing_columns(self, conn: Any, md: Any) -> None:
        """Columns crmsync added since the table was created: ALTER TABLE ADD (nullable)."""
        from sqlalchemy import inspect
        from sqlalchemy.schema import CreateColumn

        inspector = inspect(conn)
        for table in md.tables.values():
            have = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
            for column in table.columns:
                if column.name in have:
                    continue
                ddl = CreateColumn(column).compile(dialect=conn.dialect)
                name = f"{table.schema}.{table.name}" if table.schema else table.name
                conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {str(ddl).replace(' NOT NULL', '')}")
                self.note(f"added column {column.name} to {name}")

    # writing ----------------------------------------------------------------------
    def plan(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, int]:
        authors = {(d.author_profile or d.interaction.author).identity_id for d in deliveries if (d.author_profile or d.interaction.author)}
        return {"rows to upsert": len(deliveries), "authors to upsert": len(authors - {None})}

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        if not deliveries:
            return []
        return self._write_parts(list(deliveries))

    def _write_parts(self, batch: list[crmsync.Delivery]) -> list[crmsync.Receipt]:
        """Write ``batch`` in one transaction; if the database refuses it, halve it until
        the refused rows stand alone (each part in a transaction of its own)."""
        from sqlalchemy.exc import DBAPIError, StatementError

        dbapi = self.engine.dialect.dbapi
        # SQLAlchemy's wrapped errors, and the driver's own (the COPY path talks to it directly)
        database_errors = (StatementError, ValueError, *((dbapi.Error,) if dbapi is not None else ()))
        try:
            self._write_batch(batch)
        except database_errors as exc:
            original = exc.orig if isinstance(exc, DBAPIError) else exc
            operational = dbapi is not None and isinstance(original, dbapi.OperationalError)
            if operational and _is_connection_error(exc):
                msg = f"sink {self.instance}: the database went away: {_first_line(exc)}"
                raise crmsync.RetriableError(msg) from None
            return self._split(batch, exc)
        return [d.receipt(d.interaction.interaction_id) for d in batch]

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """DELETE the rows of ``deletions`` (erasure), in one transaction: by
        ``interaction_id`` in crmsync's own tables; in existing tables, by each mapped
        table's key column when that column holds the interaction id (a key computed
        from other fields cannot be found again once the record is gone)."""
        from sqlalchemy import delete as sql_delete

        ids = [d.interaction_id for d in deletions]
        if self.config["mode"] == "existing":
            unkeyed = [m.name for m, _t in self.targets if str(m.columns.get(m.key, "")).strip() != "interaction_id"]
            if unkeyed:
                msg = f"tables {', '.join(unkeyed)} are not keyed by interaction_id, so their rows cannot be found to delete"
                raise NotImplementedError(msg)
            targets = [(table, table.c[m.key]) for m, table in self.targets]
        else:
            targets = [(self.t_interactions, self.t_interactions.c.interaction_id)]
        with self.engine.begin() as conn:
            for table, key in targets:
                for start in range(0, len(ids), 500):
                    conn.execute(sql_delete(table).where(key.in_(ids[start : start + 500])))
        return ids

    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        """DELETE the people rows (and their contact links) of crmsync's own tables."""
        from sqlalchemy import delete as sql_delete

        if self.config["mode"] == "existing":
            msg = "mapped tables hold no people rows crmsync could tell apart"
            raise NotImplementedError(msg)
        ids = list(identity_ids)
        with self.engine.begin() as conn:
            for table in (self.t_links, self.t_authors):
                for start in range(0, len(ids), 500):
                    conn.execute(sql_delete(table).where(table.c.identity_id.in_(ids[start : start + 500])))
        return ids

    def _split(self, batch: list[crmsync.Delivery], exc: Exception) -> list[crmsync.Receipt]:
        if len(batch) == 1:
            d = batch[0]
            self.reject(d, f"the database refused the row: {_first_line(exc)}", request={"table": self.t_interactions.name, "interaction_id": d.interaction.interaction_id}, response={"error": _first_line(exc)})
            return []
        half = len(batch) // 2
        return self._write_parts(batch[:half]) + self._write_parts(batch[half:])

    def _write_batch(self, batch: list[crmsync.Delivery]) -> None:
        now = utcnow()
        if self.config["mode"] == "existing":
            from .mapping import convert, value

            with self.engine.begin() as conn:
                for m, table in self.targets:
                    cols = self.reflected[m.name]
                    rows = [self._fit(table, {c: convert(value(expr, d, now), cols[c], self.tz) for c, expr in m.columns.items()}) for d in batch]
                    self._upsert(conn, table, rows, [m.key])
            return
        rows = [self._fit(self.t_interactions, interaction_row(d, now)) for d in batch]
        people, links = author_rows(batch, now)
        with self.engine.begin() as conn:
            self._upsert(conn, self.t_interactions, rows, ["interaction_id"])
            if people:
                self._upsert(conn, self.t_authors, [self._fit(self.t_authors, r) for r in people], ["identity_id"])
            if links:
                self._upsert(conn, self.t_links, [self._fit(self.t_links, r) for r in links], ["identity_id", "crm"])

    def _upsert(self, conn: Any, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
        """``INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE`` of ``rows`` (executemany). Only
        the columns the rows carry are written: the others keep their defaults and, on
        conflict, what other writers put there."""
        columns = list(rows[0])
        if self.dialect in ("postgresql", "sqlite"):
            # compiled once, the rows handed to the driver as they are: SQLAlchemy's
            # per-row parameter processing was a third of the write
            sql, order, rename = self._compiled(conn, table, keys, columns)
            if self.dialect == "sqlite":
                stamps = [i for i, c in enumerate(order) if isinstance(table.c[c].type, DateTime)]
                params = []
                for r in rows:
                    values = [r[c] for c in order]
                    for i in stamps:
                        v = values[i]
                        if v is not None and v.__class__ is not str:
                            values[i] = v.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy's SQLite DateTime stores it
                    params.append(tuple(values))
                conn.exec_driver_sql(sql, params)
            elif len(rows) >= self.config["copy_from"]:
                self._copy_merge(conn, table, keys, columns, rows)
            else:
                conn.exec_driver_sql(sql, [{rename.get(k, k): v for k, v in r.items()} for r in rows] if rename else rows)
            return
        if self.dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert

            stmt = insert(table)
            stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns if c not in keys})
            conn.execute(stmt, rows)
            return
        # any other dialect: delete then insert, in the caller's transaction
        from sqlalchemy import and_, bindparam, delete
        from sqlalchemy import insert as plain_insert

        conn.execute(delete(table).where(and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))), [{f"k_{k}": r[k] for k in keys} for r in rows])
        conn.execute(plain_insert(table), rows)

    def _copy_merge(self, conn: Any, table: Any, keys: list[str], columns: list[str], rows: list[dict[str, Any]]) -> None:
        """PostgreSQL, a large batch: COPY into a temporary staging table shaped like the
        target, then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` (in the batch's
        transaction: the staging rows go with it)."""
        q = conn.dialect.identifier_preparer
        target = f"{q.quote_schema(table.schema)}.{q.quote(table.name)}" if table.schema else q.quote(table.name)
        stage = q.quote(f"crmsync_stage_{table.name}")
        cols = ", ".join(q.quote(c) for c in columns)
        updates = ", ".join(f"{q.quote(c)} = EXCLUDED.{q.quote(c)}" for c in columns if c not in keys)
        cur = conn.connection.driver_connection.cursor()
        cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in columns])
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({', '.join(q.quote(k) for k in keys)}) {conflict}")

    def _compiled(self, conn: Any, table: Any, keys: list[str], columns: list[str]) -> tuple[str, list[str], dict[str, str]]:
        """The upsert of ``columns`` of ``table`` as the driver's SQL, the order of its
        positional parameters, and the renamed (escaped) named ones."""
        cache_key = (table.name, tuple(columns))
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in columns if c not in keys})
        compiled = stmt.compile(dialect=conn.dialect, column_keys=columns)
        order = list(compiled.positiontup) if compiled.positional else columns
        rename = dict(getattr(compiled, "escaped_bind_names", None) or {})
        self._statements[cache_key] = (compiled.string, order, rename)
        return self._statements[cache_key]

    def _fit(self, table: Any, row: dict[str, Any]) -> dict[str, Any]:
        """Cut text longer than its column as the database declares it (with a marker,
        counted) and drop NULs on PostgreSQL."""
        plan = self._fit_plans.get(table.name)
        if plan is None:
            # worked out once per table: the columns that can need it
            nul = self.dialect == "postgresql"
            plan = self._fit_plans[table.name] = [
                (c.name, self.limits.get((table.name, c.name))) for c in table.columns if (table.name, c.name) in self.limits or (nul and _is_text(c.type))
            ]
        nul = self.dialect == "postgresql"
        for name, limit in plan:
            v = row.get(name)
            if v.__class__ is not str:
                continue
            if nul and "\x00" in v:
                v = v.replace("\x00", "")
            if limit is not None and len(v) > limit:
                # the marker when it fits in the column, else a plain cut
                v = crmsync.truncate(v, limit, TRUNCATION_MARKER)[0] if limit > len(TRUNCATION_MARKER) else v[:limit]
                key = f"{table.name}.{name}"
                self.truncated[key] = self.truncated.get(key, 0) + 1
            row[name] = v
        return row

    def close(self) -> None:
        for key, n in sorted(self.truncated.items()):
            self.note(f"{n} value(s) of {key} cut to the column's length (marked {TRUNCATION_MARKER!r})")
        self.truncated = {}
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def _is_text(t: Any) -> bool:
    from sqlalchemy import types

    return isinstance(t, types.String | types.Text)


def _text_limits(conn: Any, md: Any) -> dict[tuple[str, str], int]:
    """The lengths of the tables' text columns as the database declares them (a
    deployment may have narrowed one, or created the table itself)."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    out = {}
    for table in md.tables.values():
        for col in inspector.get_columns(table.name, schema=table.schema):
            length = getattr(col["type"], "length", None)
            if isinstance(length, int) and length > 0:
                out[(table.name, col["name"])] = length
    return out


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return crmsync.truncate(text.splitlines()[0] if text else type(exc).__name__, 500)[0] or type(exc).__name__


def _is_connection_error(exc: Exception) -> bool:
    """An OperationalError that means the connection is gone, not a refused row."""
    if getattr(exc, "connection_invalidated", False):
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("connection", "could not connect", "server closed", "terminating", "lost connection", "gone away", "timeout", "timed out", "database is locked", "busy"))
