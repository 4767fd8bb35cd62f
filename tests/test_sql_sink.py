"""The ``sql`` sink on real databases: SQLite, PostgreSQL and MariaDB (started by the tests).

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

from .crm_e2e import demo_copy, export, run_json

CLOSED_ENV = "CRMSYNC_TEST_SQL_CLOSED"
os.environ[CLOSED_ENV] = "postgresql+psycopg://crm:secret@127.0.0.1:9/crm"


#: the sink's interactions table with a rule the sink cannot know: no title with "Rocket" in it
REFUSES_ROCKETS = """CREATE TABLE crmsync_interactions (interaction_id VARCHAR(36) PRIMARY KEY, version INTEGER NOT NULL,
    source VARCHAR(200) NOT NULL, channel VARCHAR(40) NOT NULL, kind VARCHAR(40) NOT NULL, native_id TEXT NOT NULL, url TEXT,
    title TEXT CHECK (title IS NULL OR title NOT LIKE '%Rocket%'), record TEXT NOT NULL, synced_at TIMESTAMP NOT NULL)"""


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
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database(request, tmp_path):
    """(URL, env var holding it) of an empty database of the parameter's kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'target.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_database")
    else:
        url = request.getfixturevalue("maria_database")
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
        conn.execute(text(REFUSES_ROCKETS))
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
    from crmsync.host.config import validate_options

    options = validate_options(SqlSink.config_schema, {"url": f"env:{env}"}, where="[sinks.warehouse]")
    options["url"] = crmsync.Secret(url, f"env:{env}")  # as the run resolves it
    sink = SqlSink("warehouse", options, crmsync.Context(config_dir=tmp_path))
    author = crmsync.Identity(name="Bartholomew Longname", emails=["bart@example.org"])
    rec = crmsync.Interaction.create(source="s", channel="x-forum", native_id="n1", kind="post", title="nul\x00inside", body_text="a\x00b", author=author)
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


# existing tables ----------------------------------------------------------------------
# SuiteCRM's notes table as its published schema defines it: the database columns of
# modules/Notes/vardefs.php (github.com/salesagility/SuiteCRM) plus assigned_user_id from
# the 'assignable' template; id fields are char(36), bool fields tinyint(1)/boolean.
SUITECRM_NOTES = """CREATE TABLE notes (
    id CHAR(36) NOT NULL PRIMARY KEY,
    date_entered TIMESTAMP NULL, date_modified TIMESTAMP NULL,
    modified_user_id CHAR(36) NULL, created_by CHAR(36) NULL, assigned_user_id CHAR(36) NULL,
    name VARCHAR(255) NOT NULL, file_mime_type VARCHAR(100) NULL, filename VARCHAR(255) NULL,
    parent_type VARCHAR(255) NULL, parent_id CHAR(36) NULL, contact_id CHAR(36) NULL,
    portal_flag BOOLEAN NOT NULL, embed_flag BOOLEAN DEFAULT FALSE, description TEXT NULL,
    deleted BOOLEAN DEFAULT FALSE)"""
SUITECRM_MAPPING = """mode = "existing"
timezone = "Europe/Berlin"
[sinks.warehouse.tables.notes]
key = "id"
[sinks.warehouse.tables.notes.columns]
id = "interaction_id"
name = "first:title,summary,kind"
description = "body_text"
date_entered = "published"
date_modified = "now"
parent_type = "const:Contacts"
parent_id = "contact:"
contact_id = "contact:"
portal_flag = "const:0"
deleted = "const:0"
"""
# a reverse-ETL staging table: one row per interaction with the CRM contact id, which the
# vendor's data sync (or a reverse-ETL tool) reads into the CRM
STAGING = """CREATE TABLE crm_activity_staging (
    external_id VARCHAR(64) PRIMARY KEY, crm_contact_id VARCHAR(64), activity_type VARCHAR(32) NOT NULL,
    subject VARCHAR(255), body TEXT, occurred_at TIMESTAMP NOT NULL, sentiment VARCHAR(16), source_url TEXT,
    payload TEXT, synced_at TIMESTAMP)"""
STAGING_MAPPING = """mode = "existing"
[sinks.warehouse.tables.crm_activity_staging]
key = "external_id"
[sinks.warehouse.tables.crm_activity_staging.columns]
external_id = "interaction_id"
crm_contact_id = "contact:"
activity_type = "join:-:channel,kind"
subject = "title"
body = "body_text"
occurred_at = "first:published,fetched"
sentiment = "sentiment.label"
source_url = "url"
payload = "json"
synced_at = "now"
"""


def _create(url: str, ddl: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(ddl))
    engine.dispose()


@pytest.mark.parametrize("ddl, mapping, table", [(SUITECRM_NOTES, SUITECRM_MAPPING, "notes"), (STAGING, STAGING_MAPPING, "crm_activity_staging")], ids=["suitecrm-notes", "reverse-etl-staging"])
def test_existing_tables_by_a_mapping(tmp_path, database, ddl, mapping, table):
    url, env = database
    _create(url, ddl)
    cfg = _demo(tmp_path, env, mapping)
    code, report = run_json(cfg, "--sink", "warehouse")
    sink = next(s for s in report["sinks"] if s["name"] == "warehouse")
    assert code == 0 and sink["status"] == "ok" and sink["created"] > 0, sink
    rows = _rows(url, table)
    assert len(rows) == sink["created"]
    if table == "notes":
        assert all(r["name"] for r in rows) and all(r["portal_flag"] in (0, False) for r in rows)
        linked = [r for r in rows if r["contact_id"]]
        assert linked and all(r["parent_type"] == "Contacts" for r in linked)
        # a timestamp without a zone holds Berlin time: an hour or two ahead of UTC
        stored = export(cfg)
        some = next(r for r in rows if stored[r["id"]].get("published"))
        from datetime import datetime

        utc = datetime.fromisoformat(stored[some["id"]]["published"])
        local = some["date_entered"] if isinstance(some["date_entered"], datetime) else datetime.fromisoformat(some["date_entered"])
        assert (local - utc.replace(tzinfo=None)).total_seconds() in (3600, 7200)
    else:
        assert all(json.loads(r["payload"])["interaction_id"] == r["external_id"] for r in rows)
        assert {r["activity_type"] for r in rows} >= {"feed-post"}
    code, again = run_json(cfg, "--sink", "warehouse")
    assert next(s for s in again["sinks"] if s["name"] == "warehouse")["delivered"] == 0
    assert len(_rows(url, table)) == len(rows)


def test_validate_reports_what_does_not_fit(tmp_path, database):
    url, env = database
    _create(url, STAGING.replace("external_id VARCHAR(64) PRIMARY KEY", "external_id VARCHAR(20)").replace("subject VARCHAR(255)", "subject VARCHAR(40)"))
    bad = STAGING_MAPPING.replace('sentiment = "sentiment.label"', 'mood = "sentiment.label"').replace('activity_type = "join:-:channel,kind"\n', "")
    cfg = _demo(tmp_path, env, bad)
    from click.testing import CliRunner

    from crmsync.cli import create_cli

    r = CliRunner().invoke(create_cli(), ["-c", str(cfg), "validate"])
    assert r.exit_code == 2, r.output
    for expected in ("no column 'mood'", "'activity_type' is NOT NULL", "neither the primary key nor unique", "holds 20 characters; an interaction id has 36"):
        assert expected in r.output, r.output
    # a mapping that fits passes; a short text column is a warning
    _create(url, STAGING.replace("crm_activity_staging", "staging2").replace("subject VARCHAR(255)", "subject VARCHAR(40)"))
    good = STAGING_MAPPING.replace("crm_activity_staging", "staging2")
    cfg = _demo(tmp_path / "ok", env, good)
    r = CliRunner().invoke(create_cli(), ["-c", str(cfg), "validate"])
    assert r.exit_code == 0, r.output
    assert "mapping ok for staging2" in r.output and "staging2.subject holds 40 characters" in r.output


def test_the_demo_writes_a_sqlite_database_with_one_command(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync-sql.toml"
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 0 and sink["name"] == "crm_database" and sink["created"] > 0
    rows = _rows(f"sqlite:///{cfg.parent / 'out' / 'crm.sqlite'}")
    assert len(rows) == sink["created"] and any(r["crm_contact_id"] for r in rows)


def test_an_update_leaves_the_columns_it_does_not_map(tmp_path, database):
    url, env = database
    _create(url, SUITECRM_NOTES)
    cfg = _demo(tmp_path, env, SUITECRM_MAPPING)
    run_json(cfg, "--sink", "warehouse")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE notes SET assigned_user_id = 'user-7'"))  # the CRM assigns the notes
    engine.dispose()
    feed = sorted((cfg.parent / "feeds").iterdir())[0]
    body = feed.read_text()
    first = body.index("<item>")
    feed.write_text(body[:first] + body[first:].replace("<title>", "<title>Edited: ", 1))
    code, report = run_json(cfg, "--sink", "warehouse")
    assert next(s for s in report["sinks"] if s["name"] == "warehouse")["updated"] == 1
    rows = _rows(url, "notes")
    edited = [r for r in rows if r["name"].startswith("Edited: ")]
    assert len(edited) == 1 and all((r["assigned_user_id"] or "").strip() == "user-7" for r in rows)  # CHAR pads on PostgreSQL
    assert all(r["embed_flag"] in (0, False) for r in rows), "a column the mapping leaves out keeps its default"


@pytest.mark.postgres
def test_postgres_copy_and_merge_path(tmp_path, pg_database):
    """Batches of copy_from rows or more go through COPY into a staging table and one
    INSERT ... SELECT ... ON CONFLICT; refused rows are still found by halving."""
    url = pg_database
    env = f"CRMSYNC_TEST_SQL_COPY_{os.getpid()}"
    os.environ[env] = url
    try:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(REFUSES_ROCKETS))
        engine.dispose()
        cfg = _demo(tmp_path, env, "copy_from = 2\n")
        code, report = run_json(cfg, "--sink", "warehouse")
        sink = next(s for s in report["sinks"] if s["name"] == "warehouse")
        rows = _rows(url)
        assert sink["rejected"] >= 1 and len(rows) == sink["created"] > 0
        assert not any("Rocket" in (r["title"] or "") for r in rows)
        code, again = run_json(cfg, "--sink", "warehouse")
        assert next(s for s in again["sinks"] if s["name"] == "warehouse")["created"] == 0 and len(_rows(url)) == len(rows)
    finally:
        os.environ.pop(env, None)
