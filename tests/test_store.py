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
