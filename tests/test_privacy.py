"""Issue 21: erasure (`crmsync forget`) reaches the store, the sinks and later runs;
`[privacy] opt_out` keeps people out from the start."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from crmsync_crm_csv.sink import read_import_files

from crmsync.cli import create_cli

TOM = "tom.baker@example.org"


def _cli(demo: Path, *args: str):
    return CliRunner().invoke(create_cli(), ["-c", str(demo / "crmsync.toml"), *args])


def _held(demo: Path) -> list[dict]:
    return read_import_files(demo / "out")


def test_forget_erases_a_person_from_the_store_the_crm_files_and_later_runs(demo_dir):
    assert _cli(demo_dir, "run", "--no-progress").exit_code == 0
    before = _held(demo_dir)
    toms = [r for r in before if r["author_email"] == TOM]
    assert len(before) == 12 and len(toms) == 4
    plan = _cli(demo_dir, "forget", "--email", "Tom.Baker@Example.org", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.output) == {"dry_run": True, "identities": 1, "interactions": 4, "keys_suppressed": 1, "sinks": {"crm_import": 4}}
    assert len(_held(demo_dir)) == 12  # a dry run changes nothing

    res = _cli(demo_dir, "forget", "--email", TOM, "--yes", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["interactions"] == 4 and out["identities"] == 1 and out["sinks"] == [{"sink": "crm_import", "deleted": 4, "left": [], "error": None, "people_deleted": 1, "people_note": None}]
    # the CRM, importing the deletion file set, no longer holds them
    after = _held(demo_dir)
    assert len(after) == 8 and not [r for r in after if r["author_email"] == TOM]
    assert list((demo_dir / "out").glob("deletions-*.csv"))
    # the store holds no trace of the address: not in a record, not in a freed page
    db = demo_dir / ".crmsync" / "crmsync.db"
    assert TOM.encode() not in db.read_bytes()
    with sqlite3.connect(db) as conn:
        (hashes,) = conn.execute("SELECT count(*) FROM suppressions").fetchone()
    assert hashes == 1
    # a full re-read finds his mails, reviews and contact row again: all skipped
    rep = json.loads(_cli(demo_dir, "run", "--no-progress", "--full-refresh", "--json").output)
    assert sum(s["suppressed"] for s in rep["sources"]) == 5 and sum(s["new"] for s in rep["sources"]) == 0
    assert rep["sinks"][0]["delivered"] == 0 and len(_held(demo_dir)) == 8
    assert TOM.encode() not in db.read_bytes()


def test_opt_out_keeps_people_and_domains_out_from_the_first_run(demo_dir):
    cfg = demo_dir / "crmsync.toml"
    cfg.write_text(cfg.read_text() + f'\n[privacy]\nopt_out = ["{TOM}", "@durand.example"]\n')
    rep = json.loads(_cli(demo_dir, "run", "--no-progress", "--json").output)
    held = _held(demo_dir)
    assert not [r for r in held if r["author_email"] in (TOM, "camille@durand.example")]
    # Tom's four, Camille's review and their two CRM contact rows; Camille's blog post names
    # no address (opt-out matches what each record says of its author)
    assert sum(s["suppressed"] for s in rep["sources"]) == 7 and len(held) == 12 - 5


def test_a_bad_opt_out_is_a_configuration_error(demo_dir):
    cfg = demo_dir / "crmsync.toml"
    cfg.write_text(cfg.read_text() + "\n[privacy]\nopt_out = \"someone@x.example\"\n")
    res = _cli(demo_dir, "validate")
    assert res.exit_code == 2 and "opt_out" in res.output


def test_the_sql_sink_deletes_the_rows(demo_dir):
    sql = demo_dir / "crmsync-sql.toml"
    assert _cli_cfg(sql, "run", "--no-progress").exit_code == 0
    target = demo_dir / "out" / "crm.sqlite"

    def count() -> int:
        with sqlite3.connect(target) as conn:
            return conn.execute("SELECT count(*) FROM crmsync_interactions WHERE author_id = (SELECT author_id FROM crmsync_interactions WHERE body_text LIKE '%Rocket%' AND author_id IS NOT NULL GROUP BY author_id ORDER BY count(*) DESC LIMIT 1)").fetchone()[0]

    with sqlite3.connect(target) as conn:
        total = conn.execute("SELECT count(*) FROM crmsync_interactions").fetchone()[0]
    res = _cli_cfg(sql, "forget", "--email", TOM, "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sinks"] == [{"sink": "crm_database", "deleted": 4, "left": [], "error": None, "people_deleted": 1, "people_note": None}]
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM crmsync_interactions").fetchone()[0] == total - 4


def _cli_cfg(cfg: Path, *args: str):
    return CliRunner().invoke(create_cli(), ["-c", str(cfg), *args])


def test_a_sink_that_cannot_delete_is_named_with_what_to_remove_by_hand(demo_dir):
    import crmsync
    from crmsync_crm_csv.sink import CsvSink

    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.pipeline.privacy import erase, plan_erasure
    from crmsync.store import Store

    class KeepingSink(CsvSink):
        def delete(self, deletions):
            raise NotImplementedError

    assert _cli(demo_dir, "run", "--no-progress").exit_code == 0
    host = get_host()
    config = load_config(demo_dir / "crmsync.toml", host)
    store = Store(config.store_url)
    real = host.sinks["crm_csv"]
    host.sinks["crm_csv"] = KeepingSink
    try:
        plan = plan_erasure(store, config, emails=[TOM])
        (res,), counts = erase(store, config, host, plan, crmsync.Context(config_dir=demo_dir))
        assert res.deleted == 0 and len(res.left) == 4 and "cannot delete" in res.error
        # the store forgets the person, but its ledger still says the sink holds the four records
        mine = {iid for iid, _ in plan.interactions}
        assert counts["interactions"] == 4 and len(mine & set(store.ledger.entries("crm_import"))) == 4
    finally:
        host.sinks["crm_csv"] = real
        store.dispose()


def test_forget_deletes_the_lead_crmsync_created_for_a_new_author_not_crm_records(demo_dir):
    """Lee Chun is no CRM contact: the crm_csv sink wrote a contacts row for him, which a
    deletion file set now removes. Tom Baker's contact is the CRM's own: nothing of it."""
    assert _cli(demo_dir, "run", "--no-progress").exit_code == 0
    contacts = read_import_files(demo_dir / "out", kind="contacts")
    lee = [r for r in contacts if "lee.chun@example.net" in json.dumps(r)]
    assert len(lee) == 1
    res = _cli(demo_dir, "forget", "--email", "lee.chun@example.net", "--yes", "--json")
    assert res.exit_code == 0, res.output
    (sink,) = json.loads(res.output)["sinks"]
    assert sink["deleted"] == 1 and sink["people_deleted"] == 1
    after = read_import_files(demo_dir / "out", kind="contacts")
    assert not [r for r in after if "lee.chun@example.net" in json.dumps(r)] and len(after) == len(contacts) - 1
