"""Issue 21: a review removed from its platform's export is taken down everywhere when the
source says on_delete = "propagate": a new (deleted) version in the store, a delete in each sink."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from crmsync_crm_csv.sink import read_import_files

from crmsync.cli import create_cli

HEADER = "review_id,created_at,stars,title,body,reviewer_name,reviewer_email"


def _write(path: Path, ids: list[int]) -> None:
    path.write_text("\n".join([HEADER, *(f"R{n},2026-11-0{n},4,t{n},fine {n},N{n},n{n}@x.example" for n in ids)]) + "\n")


def _setup(tmp_path: Path, on_delete: str) -> Path:
    _write(tmp_path / "reviews.csv", [1, 2, 3])
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text(
        '[store]\npath = "s/crmsync.db"\n'
        f'[sources.shop]\nplugin = "reviews"\nfiles = ["reviews.csv"]\nplatform = "shop"\non_delete = "{on_delete}"\n'
        '[sinks.crm]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"\n'
        '[sinks.db]\nplugin = "sql"\npath = "out/crm.sqlite"\n'
    )
    return cfg


def _run(cfg: Path) -> dict:
    res = CliRunner().invoke(create_cli(), ["-c", str(cfg), "run", "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_a_review_removed_from_the_export_is_deleted_in_every_sink(tmp_path):
    import sqlite3

    cfg = _setup(tmp_path, "propagate")
    _run(cfg)
    assert {r["native_id"] for r in read_import_files(tmp_path / "out")} == {"R1", "R2", "R3"}
    _write(tmp_path / "reviews.csv", [1, 3])
    rep = _run(cfg)
    assert rep["sources"][0]["deleted"] == 1
    assert {s["name"]: s["deleted"] for s in rep["sinks"]} == {"crm": 1, "db": 1}
    assert {r["native_id"] for r in read_import_files(tmp_path / "out")} == {"R1", "R3"}
    with sqlite3.connect(tmp_path / "out" / "crm.sqlite") as conn:
        assert sorted(r[0] for r in conn.execute("SELECT native_id FROM crmsync_interactions")) == ["R1", "R3"]
    # in the store: a new version, marked deleted (not gone: the record of what was there stays)
    exported = [json.loads(line) for line in CliRunner().invoke(create_cli(), ["-c", str(cfg), "export"]).stdout.splitlines()]
    gone = next(r for r in exported if r["native_id"] == "R2")
    assert gone["deleted"] is True and gone["version"] == 2
    # nothing more happens on the next runs
    rep = _run(cfg)
    assert rep["sources"][0]["deleted"] == 0 and all(s["delivered"] == 0 for s in rep["sinks"])


def test_keep_is_the_default_and_a_quarantined_row_stops_a_takedown(tmp_path):
    cfg = _setup(tmp_path, "keep")
    _run(cfg)
    _write(tmp_path / "reviews.csv", [1, 3])
    rep = _run(cfg)
    assert rep["sources"][0]["deleted"] == 0
    assert {r["native_id"] for r in read_import_files(tmp_path / "out")} == {"R1", "R2", "R3"}

    cfg = _setup(tmp_path / "q", "propagate") if (tmp_path / "q").mkdir() is None else None
    _run(cfg)
    (tmp_path / "q" / "reviews.csv").write_text(HEADER + "\nR1,2026-11-01,4,t1,fine 1,N1,n1@x.example\nBROKEN,not a date,x\n")
    res = CliRunner().invoke(create_cli(), ["-c", str(cfg), "run", "--no-progress", "--json"])
    rep = json.loads(res.stdout)
    assert rep["sources"][0]["deleted"] == 0 and rep["sources"][0]["quarantined"] == 1
