"""The ``sql`` sink on real databases: SQLite and PostgreSQL (started by the tests).

The same matrix runs on each: create, re-run (zero writes), edit (one update), a
kill between commit and ledger, a refused row in the middle of a batch, a text
longer than its column, NUL characters; and the conformance kit's sink checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crmsync.testing import get_sink_test_class
from crmsync_sql import SqlSink

from .crm_e2e import demo_copy, run_json

CLOSED_ENV = "CRMSYNC_TEST_SQL_CLOSED"
os.environ[CLOSED_ENV] = "postgresql+psycopg://crm:secret@127.0.0.1:9/crm"


def _rows(url: str, table: str = "crmsync_interactions") -> list[dict]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
    finally:
        engine.dispose()


def _sqlite_read_back(options: dict, tmp: Path) -> list[dict]:
    return _rows(f"sqlite:///{tmp / options['path']}")


TestSqlSinkOnSQLite = get_sink_test_class(
    SqlSink,
    {"path": "crm.db"},
    read_back=_sqlite_read_back,
    unreachable_config={"url": f"env:{CLOSED_ENV}", "connect_timeout": 2},
)


# the matrix, on each database -------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path):
    """(URL, env var holding it) of an empty database of the parameter's kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'target.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    name = f"CRMSYNC_TEST_SQL_{request.param.upper()}_{os.getpid()}"
    os.environ[name] = url
    yield url, name
    os.environ.pop(name, None)


def _demo(tmp_path: Path, env: str, extra: str = "") -> Path:
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    text_ = cfg.read_text()
    cfg.write_text(text_ + f'\n[sinks.warehouse]\nplugin = "sql"\nurl = "env:{env}"\n{extra}')
    return cfg


def test_create_rerun_edit(tmp_path, database):
    url, env = database
    cfg = _demo(tmp_path, env)
    code, report = run_json(cfg)
    sink = next(s for s in report["sinks"] if s["name"] == "warehouse")
    assert code == 0 and sink["status"] == "ok" and sink["created"] > 0
    rows = _rows(url)
    assert len(rows) == sink["created"] and {r["version"] for r in rows} == {1}
    assert any(r["crm_contact_id"] for r in rows), "the matched CRM contact is in its column"
    assert all(json.loads(r["record"])["interaction_id"] == r["interaction_id"] for r in rows)
    links = _rows(url, "crmsync_contact_links")
    assert links and all(link["crm_id"] for link in links)
    # a re-run writes nothing
    code, again = run_json(cfg)
    assert next(s for s in again["sinks"] if s["name"] == "warehouse")["delivered"] == 0
    # an edit: one update, same row count
    feeds = cfg.parent / "feeds"
    feed = sorted(feeds.iterdir())[0]
    before = feed.read_text()
    title_start = before.index("<item>")
    after = before[:title_start] + before[title_start:].replace("<title>", "<title>Edited: ", 1)
    feed.write_text(after)
    code, edited = run_json(cfg)
    sink = next(s for s in edited["sinks"] if s["name"] == "warehouse")
    assert sink["updated"] == 1 and sink["created"] == 0
    rows2 = _rows(url)
    assert len(rows2) == len(rows) and sum(1 for r in rows2 if r["version"] == 2 and r["title"].startswith("Edited: ")) == 1


def test_a_kill_between_commit_and_ledger_resends_to_the_same_rows(tmp_path, database):
    url, env = database
    cfg = _demo(tmp_path, env)
    code, _ = run_json(cfg, "--sink", "warehouse", failpoints="sink.after_write:1")
    assert code < 0, "the failpoint kills the run"
    killed = _rows(url)
    assert killed, "the first batch was committed before the kill"
    code, report = run_json(cfg)
    sink = next(s for s in report["sinks"] if s["name"] == "warehouse")
    assert code == 0 and sink["status"] == "ok"
    rows = _rows(url)
    assert len(rows) == len({r["interaction_id"] for r in rows}), "nothing twice"
    assert {r["interaction_id"]: r["title"] for r in killed}.items() <= {r["interaction_id"]: r["title"] for r in rows}.items()


def test_a_refused_row_is_quarantined_and_the_rest_lands(tmp_path, database):
    url, env = database
    engine = create_engine(url)
    # the target refuses one title (a rule of the database the sink cannot know)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE crmsync_interactions (interaction_id VARCHAR(36) PRIMARY KEY, version INTEGER NOT NULL, source VARCHAR(200) NOT NULL, "
                          "channel VARCHAR(40) NOT NULL, kind VARCHAR(40) NOT NULL, native_id TEXT NOT NULL, url TEXT, "
                          "title TEXT CHECK (title IS NULL OR title NOT LIKE '%Rocket%'), record TEXT NOT NULL, synced_at TIMESTAMP NOT NULL)"))
    engine.dispose()
    cfg = _demo(tmp_path, env)
    code, report = run_json(cfg)
    sink = next(s for s in report["sinks"] if s["name"] == "warehouse")
    rows = _rows(url)
    assert sink["rejected"] >= 1 and code == 1
    assert any("added column" in n for n in sink["notes"]), "the sink's missing columns were added"
    assert not any("Rocket" in (r["title"] or "") for r in rows)
    assert len(rows) == sink["created"] and sink["backlog"] == sink["rejected"]
    from .crm_e2e import quarantined

    held = quarantined(cfg, "sink:warehouse")
    assert held and all(q["source"] == "sink:warehouse" for q in held)
    assert any("check" in q["reason"].lower() or "constraint" in q["reason"].lower() for q in held)


def test_long_text_is_cut_to_the_column_and_nul_characters_removed(tmp_path, database):
    import crmsync

    url, env = database
    # a deployment that narrowed a column: the sink cuts to it and says so
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE crmsync_authors (identity_id VARCHAR(36) PRIMARY KEY, name VARCHAR(16), emails TEXT, handles TEXT, company TEXT, "
                          "influence FLOAT, flags TEXT, synced_at TIMESTAMP NOT NULL)"))
    engine.dispose()
    sink = SqlSink("warehouse", {"url": crmsync.Secret(url, f"env:{env}"), "table_prefix": "crmsync_", "connect_timeout": 10}, crmsync.Context(config_dir=tmp_path))
    author = crmsync.Identity(name="Bartholomew Longname", emails=["bart@example.org"])
    rec = crmsync.Interaction.create(source="s", channel="forum", native_id="n1", kind="post", title="nul\x00inside", body_text="a\x00b", author=author)
    sink.open()
    try:
        receipts = sink.write([crmsync.Delivery(rec, 1, "create")])
    finally:
        sink.close()
    assert [r.interaction_id for r in receipts] == [rec.interaction_id] and not sink.rejections
    (row,) = _rows(url)
    (who,) = _rows(url, "crmsync_authors")
    assert who["name"] == "Bart…[truncated]"
    assert any("crmsync_authors.name cut" in n for n in sink.notes)
    if url.startswith("postgresql"):
        assert row["title"] == "nulinside" and row["body_text"] == "ab"
