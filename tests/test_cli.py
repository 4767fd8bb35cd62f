"""The CLI on the demo: run report, status, export (JSONL and spreadsheet-safe CSV), JSON logs."""

from __future__ import annotations

import csv
import io
import json
import re

from click.testing import CliRunner

from crmsync.cli import create_cli

from .conftest import ROOT


def invoke(*args):
    return CliRunner().invoke(create_cli(), list(args))


def test_demo_run_report_and_rerun(demo_dir):
    cfg = str(demo_dir / "crmsync.toml")
    r = invoke("-c", cfg, "run")
    assert r.exit_code == 0, r.output
    assert re.search(r"crm_import\s+crm_csv\s+12\s+0\s+12\s+0\s+ok", r.output)
    r = invoke("-c", cfg, "run", "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == 0 and report["status"] == "ok"
    assert [s["read"] for s in report["sources"]] == [0, 0, 0, 0]
    assert report["sinks"][0]["delivered"] == 0
    status = json.loads(invoke("-c", cfg, "status", "--json").stdout)
    assert status["interactions"] == {"blogs": 5, "shop_reviews": 4, "support_mail": 3}
    assert status["sinks"]["crm_import"] == {"plugin": "crm_csv", "backlog": 0, "delivered": 12}
    assert [r["status"] for r in status["runs"]] == ["ok", "ok"]
    text = invoke("-c", cfg, "status").output
    assert "crm_import (crm_csv): delivered 12, backlog 0" in text


def test_dry_run_on_demo_writes_nothing(demo_dir):
    r = invoke("-c", str(demo_dir / "crmsync.toml"), "run", "--dry-run")
    assert r.exit_code == 0 and "dry run: nothing written" in r.output
    assert re.search(r"crm_import\s+crm_csv\s+12\s+0", r.output)
    assert not (demo_dir / "out").exists()


def test_export_jsonl_and_csv(demo_dir):
    cfg = str(demo_dir / "crmsync.toml")
    invoke("-c", cfg, "run")
    lines = invoke("-c", cfg, "export").stdout.splitlines()
    recs = [json.loads(line) for line in lines]
    assert len(recs) == 12 and all(r["version"] == 1 for r in recs)
    thread = [r for r in recs if r["source"] == "support_mail"]
    root = next(r for r in thread if r["in_reply_to"] is None)
    assert all(r["thread_id"] == root["thread_id"] for r in thread if r["author"]["emails"] == ["tom.baker@example.org"])
    out = invoke("-c", cfg, "export", "--format", "csv", "--source", "shop_reviews").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4
    titles = {r["title"] for r in rows}
    assert "'=HYPERLINK(\"http://evil.example\",\"Click me\")" in titles


def test_json_logs(demo_dir):
    (demo_dir / "feeds" / "broken.xml").write_text("<rss><channel></rss>")
    r = invoke("--log-format", "json", "-c", str(demo_dir / "crmsync.toml"), "run", "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["sources"][0]["quarantined"] == 1 and report["status"] == "ok_with_quarantine"
    logs = [json.loads(line) for line in r.stderr.splitlines()]
    assert logs[0]["level"] == "warning" and "broken.xml" in logs[0]["message"] and "malformed XML" in logs[0]["message"]


def test_help_teaches():
    r = invoke("--help")
    assert "Quick start" in r.output and "Exit codes" in r.output
    r = invoke("run", "--help")
    assert "--dry-run" in r.output and "Examples" in r.output


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    demo_cmd, test_cmd = blocks[0], blocks[1]
    assert "crmsync -c demo/crmsync.toml run" in demo_cmd
    assert test_cmd in ci.splitlines()


def test_progress_bars_on_request(demo_dir):
    r = invoke("-c", str(demo_dir / "crmsync.toml"), "run", "--progress")
    assert r.exit_code == 0
    assert "source blogs" in r.stderr and "sink crm_import" in r.stderr and "rec" in r.stderr
    quiet = invoke("-c", str(demo_dir / "crmsync.toml"), "run")
    assert quiet.stderr == ""  # not a terminal: no bars, no chatter
