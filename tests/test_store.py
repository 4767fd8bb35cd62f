"""The SQLite store: migrations match the table definitions, versions, ledger, quarantine dedupe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from crmsync import Identity, Interaction, Rejected
from crmsync.contract.base import Receipt
from crmsync.store import Store
from crmsync.store.tables import metadata


def _rec(n, title="t", email="a@example.org"):
    return Interaction.create(source="s", channel="feed", native_id=f"n{n}", scope="x", kind="post", title=title, author=Identity(name="A", emails=[email]))


def test_migrations_match_table_definitions(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"version_table": "crmsync_alembic_version"}), metadata)
        assert diff == []
    finally:
        store.dispose()


def test_schema_head_is_the_newest_migration(tmp_path):
    """Store.migrate skips Alembic when the store is at SCHEMA_HEAD: it must be the real head."""
    from alembic.script import ScriptDirectory

    from crmsync.store import SCHEMA_HEAD

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        assert ScriptDirectory.from_config(store.db.alembic_config()).get_current_head() == SCHEMA_HEAD
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM crmsync_alembic_version").scalar() == SCHEMA_HEAD
        store.migrate()  # at head: a no-op
    finally:
        store.dispose()


def test_versions_and_ledger(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        r = store.interactions.write_batch("s", [_rec(1), _rec(2), _rec(1)], bookmark={"b": 1})
        assert (r.new, r.updated, r.identities) == (2, 0, 1)
        assert store.interactions.write_batch("s", [_rec(1), _rec(2)]).unchanged == 2
        assert store.ledger.backlog("crm") == 2
        store.ledger.record("crm", [Receipt(p.interaction.interaction_id, p.version) for p in store.ledger.pending("crm")])
        assert store.ledger.backlog("crm") == 0 and store.ledger.backlog("other") == 2
        store.interactions.write_batch("s", [_rec(2, "new title")])
        (p,) = store.ledger.pending("crm")
        assert p.interaction.title == "new title" and (p.version, p.delivered_version) == (2, 1)
        assert store.ledger.pending("crm", sources=["elsewhere"]) == []
        assert store.ledger.reset("crm") == 2 and store.ledger.backlog("crm") == 2
        # identities merge what each sighting adds
        store.interactions.write_batch("s", [_rec(3, email="a@example.org")], identities_=[Identity(name="A", emails=["a@example.org", "a2@example.org"])])
        (ident,) = list(store.identities.all())
        assert ident.emails == ["a@example.org", "a2@example.org"]
    finally:
        store.dispose()


def test_quarantine_is_deduplicated(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        for _ in range(3):
            store.interactions.write_batch("s", [], rejected=[Rejected("f.csv:3", "bad row", b"x,y")])
        store.interactions.write_batch("s", [], rejected=[Rejected("f.csv:4", "bad row", b"x,z")])
        items = store.quarantine.items()
        assert [(i.ref, i.attempts) for i in items] == [("f.csv:3", 3), ("f.csv:4", 1)]
        store.quarantine.set_status(items[0].id, "dismissed")
        assert [i.ref for i in store.quarantine.items()] == ["f.csv:4"]
    finally:
        store.dispose()


def test_killed_run_is_marked_abandoned(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        store.runs.start("r1", "run")
        store.runs.start("r2", "run")  # r1 never finished: it was killed
        runs = {r["run_id"]: r["status"] for r in store.runs.recent()}
        assert runs == {"r1": "abandoned", "r2": "running"}
    finally:
        store.dispose()


def test_bulk_rows_are_stored_as_sqlalchemy_stores_them(tmp_path):
    """write_rows hands SQLite tuples straight to the driver: what it stores (datetimes of
    any zone, booleans, NULLs) must be byte for byte what SQLAlchemy's own executemany
    stores, and an update by a composite key must touch exactly the rows it names."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import insert, select

    from crmsync.store.database import write_rows
    from crmsync.store.tables import deliveries, identities

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        when = [datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5))), datetime(999, 1, 2, tzinfo=UTC)]
        rows = [{"identity_id": f"id{i}", "name": None if i == 1 else f"N{i}", "source": "s", "record": "{}", "updated_at": w, "is_contact": i == 0} for i, w in enumerate(when)]
        with store.db.begin() as conn:
            write_rows(conn, identities, rows)
            conn.execute(insert(identities), [{**r, "identity_id": "x" + r["identity_id"]} for r in rows])
        with store.engine.connect() as conn:
            raw = dict(conn.exec_driver_sql("SELECT identity_id, name || '|' || updated_at || '|' || is_contact FROM identities").all())
            assert raw["xid1"] is None and raw["id1"] is None
            for i in (0, 2):
                assert raw[f"id{i}"] == raw[f"xid{i}"]
            assert [r[0] for r in conn.execute(select(identities.c.updated_at).where(identities.c.identity_id.in_(["id1", "xid1"])))] == [when[1].replace(tzinfo=None)] * 2
        deliveries_rows = [{"sink": s, "interaction_id": i, "version": 1, "external_id": None, "run_id": None, "delivered_at": when[0]} for s in ("a", "b") for i in ("i1", "i2")]
        with store.db.begin() as conn:
            write_rows(conn, deliveries, deliveries_rows)
            write_rows(conn, deliveries, [{"sink": "b", "interaction_id": "i1", "version": 7, "external_id": "E", "delivered_at": when[2]}], where=("sink", "interaction_id"))
            write_rows(conn, deliveries, [])
        with store.engine.connect() as conn:
            got = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(select(deliveries.c.sink, deliveries.c.interaction_id, deliveries.c.version, deliveries.c.external_id))}
        assert got == {("a", "i1"): (1, None), ("a", "i2"): (1, None), ("b", "i1"): (7, "E"), ("b", "i2"): (1, None)}
    finally:
        store.dispose()
