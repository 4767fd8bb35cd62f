"""The store on a real PostgreSQL server: migrations, upserts, ledger, lock, a full demo run."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from crmsync import Interaction, Rejected
from crmsync.contract.base import Receipt
from crmsync.cli import create_cli
from crmsync.contract.errors import LockedError
from crmsync.store import Store

from .conftest import crmsync_cmd

pytestmark = pytest.mark.postgres


def _rec(n: int, title: str = "t") -> Interaction:
    return Interaction.create(source="s", channel="feed", native_id=f"id-{n}", scope="pg", kind="post", title=title)


def test_migrations_create_every_table(pg_database):
    store = Store(pg_database)
    try:
        names = set(inspect(create_engine(pg_database)).get_table_names())
        assert {"interactions", "identities", "bookmarks", "deliveries", "quarantine", "runs", "crmsync_alembic_version"} <= names
        Store(pg_database).dispose()  # a second open is a no-op migration
    finally:
        store.dispose()


def test_upsert_versions_ledger_quarantine(pg_database):
    store = Store(pg_database)
    try:
        res = store.interactions.write_batch("s", [_rec(1), _rec(2)], rejected=[Rejected("f.xml", "broken", b"<x")], bookmark={"n": 2})
        assert (res.new, res.updated, res.quarantined) == (2, 0, 1)
        assert store.bookmarks.get("s") == {"n": 2}
        res = store.interactions.write_batch("s", [_rec(1, "edited"), _rec(2)], rejected=[Rejected("f.xml", "broken", b"<x")])
        assert (res.new, res.updated, res.unchanged) == (0, 1, 1)
        items = store.quarantine.items()
        assert len(items) == 1 and items[0].attempts == 2 and items[0].raw == b"<x"
        pending = store.ledger.pending("crm")
        assert [p.version for p in sorted(pending, key=lambda p: p.interaction.native_id)] == [2, 1]
        store.ledger.record("crm", [Receipt(p.interaction.interaction_id, p.version, "X1") for p in pending])
        assert store.ledger.pending("crm") == [] and store.ledger.backlog("crm") == 0
        store.interactions.write_batch("s", [_rec(2, "edited too")])
        (p,) = store.ledger.pending("crm")
        assert (p.version, p.delivered_version, p.external_id) == (2, 1, "X1")
    finally:
        store.dispose()


def test_advisory_lock(pg_database):
    a, b = Store(pg_database), Store(pg_database)
    try:
        a.runs.start("run-a", "run")
        a.locks.acquire_lock("run-a")
        with pytest.raises(LockedError, match="run-a"):
            b.locks.acquire_lock("run-b")
        a.locks.release()
        b.locks.acquire_lock("run-b")
        b.locks.release()
    finally:
        a.dispose()
        b.dispose()


def test_demo_on_postgres_twice(pg_database, demo_dir):
    cli = create_cli()
    r = CliRunner().invoke(cli, ["-c", str(demo_dir / "crmsync.toml"), "--store", pg_database, "run", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["sinks"][0]["delivered"] == 12
    r = CliRunner().invoke(cli, ["-c", str(demo_dir / "crmsync.toml"), "--store", pg_database, "run", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["sinks"][0]["delivered"] == 0
    # the password-less URL is shown; the SQLite default was not used
    assert not (demo_dir / ".crmsync" / "crmsync.db").exists()


def test_sigkill_on_postgres_store(pg_database, demo_dir):
    env_kill = {"CRMSYNC_FAILPOINTS": "sink.after_flush:1", "CRMSYNC_STORE_URL": pg_database}
    import os

    base = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    cfg = str(demo_dir / "crmsync.toml")
    killed = subprocess.run([*crmsync_cmd(), "-c", cfg, "run"], env={**base, **env_kill}, capture_output=True)
    assert killed.returncode == -9
    # the killed run's advisory lock died with its connection
    again = subprocess.run([*crmsync_cmd(), "-c", cfg, "run", "--json"], env={**base, "CRMSYNC_STORE_URL": pg_database}, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    from crmsync_crm_csv import read_import_files

    rows = read_import_files(demo_dir / "out")
    assert len(rows) == 12 and len({r["external_id"] for r in rows}) == 12


def test_a_sink_in_worker_processes_on_postgres(pg_database, tmp_path):
    import os

    from .test_crash import _crm_view, _reviews_dataset

    cfg = _reviews_dataset(tmp_path / "data")
    env = {**{k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}, "CRMSYNC_STORE_URL": pg_database}
    killed = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], env={**env, "CRMSYNC_FAILPOINTS": "sink.after_ledger:1"}, capture_output=True)
    assert killed.returncode == -9
    done = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--json", "--no-progress"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sink = json.loads(done.stdout)["sinks"][0]
    assert "delivered by 2 worker processes" in sink["notes"] and sink["backlog"] == 0, sink
    view = _crm_view(tmp_path / "data" / "out")
    assert len(view) == 5000 and all(title.startswith("Review ") for title, _body in view.values())
