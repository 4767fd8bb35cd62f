"""The operators' commands: state show|reset, sink redeliver, runs list|show; and
bookmarks that survive moving the project."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from crmsync.cli import create_cli
from crmsync.store import Store

from .crm_e2e import demo_copy, run_json


def _cli(cfg, *args):
    return CliRunner().invoke(create_cli(), ["-c", str(cfg), *args])


def _by_name(report, kind, field):
    return {s["name"]: s[field] for s in report[kind]}


def test_state_show_and_reset_read_again_without_delivering_twice(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    run_json(cfg)
    r = _cli(cfg, "state", "show", "blogs")
    marks = json.loads(r.output)
    assert r.exit_code == 0 and list(marks) == ["blogs"] and marks["blogs"]["state"]["files"]
    assert all(not k.startswith("/") for k in marks["blogs"]["state"]["files"]), "bookmarks name files relative to the config"
    assert _cli(cfg, "state", "show", "nope").exit_code == 2
    r = _cli(cfg, "state", "reset", "blogs", "--yes")
    assert r.exit_code == 0 and "reads it from the start" in r.output
    _, again = run_json(cfg)
    assert _by_name(again, "sources", "read")["blogs"] > 0 and _by_name(again, "sinks", "delivered")["crm_import"] == 0
    r = _cli(cfg, "state", "reset", "nope", "--yes")
    assert r.exit_code == 2 and "unknown source 'nope'" in r.output


def test_reset_waits_for_no_run(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    run_json(cfg)
    store = Store(f"sqlite:///{cfg.parent / '.crmsync' / 'crmsync.db'}")
    try:
        store.locks.acquire_locks("run-in-progress", ["source:blogs"])
        r = _cli(cfg, "state", "reset", "blogs", "--yes")
        assert r.exit_code == 3 and "run-in-progress" in r.output
    finally:
        store.dispose()


def test_sink_redeliver_sends_the_chosen_part_again(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    _, first = run_json(cfg)
    r = _cli(cfg, "sink", "redeliver", "crm_import", "--since", "2999-01-01", "--yes")
    assert r.exit_code == 0 and "0 delivered record(s) forgotten" in r.output
    mail = _by_name(first, "sources", "new")["support_mail"]
    r = _cli(cfg, "sink", "redeliver", "crm_import", "--source", "support_mail", "--yes")
    assert r.exit_code == 0 and f"{mail} delivered record(s) forgotten" in r.output and f"backlog now {mail}" in r.output
    _, again = run_json(cfg)
    assert _by_name(again, "sinks", "delivered")["crm_import"] == mail
    r = _cli(cfg, "sink", "redeliver", "crm_import", "--yes")
    total = _by_name(first, "sinks", "delivered")["crm_import"]
    assert f"{total} delivered record(s) forgotten (everything)" in r.output
    r = _cli(cfg, "sink", "redeliver", "nope", "--yes")
    assert r.exit_code == 2


def test_runs_list_and_show(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    _, report = run_json(cfg)
    r = _cli(cfg, "runs", "list", "--json")
    runs = json.loads(r.output)
    assert r.exit_code == 0 and runs[0]["run_id"] == report["run_id"] and runs[0]["status"] == report["status"]
    r = _cli(cfg, "runs", "show", report["run_id"][:8])
    shown = json.loads(r.output)
    assert r.exit_code == 0 and shown["report"]["sinks"] == report["sinks"]
    assert _cli(cfg, "runs", "show", "ffffffff-none").exit_code == 2


def test_moving_the_project_keeps_the_bookmarks(tmp_path):
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    run_json(cfg)
    moved = tmp_path / "elsewhere"
    shutil.move(str(cfg.parent), moved)
    code, report = run_json(moved / "crmsync.toml")
    assert code == 0 and all(n == 0 for n in _by_name(report, "sources", "read").values()), report["sources"]


def test_plugins_lists_every_option_with_type_default_and_description():
    r = CliRunner().invoke(create_cli(), ["plugins", "--json"])
    report = json.loads(r.output)
    assert r.exit_code == 0
    sql = next(p for p in report if p["name"] == "sql")["options"]["sinks"]["sql"]
    assert sql["url"]["secret"] is True and sql["mode"]["default"] == "own" and "existing" in sql["mode"]["type"]
    rss = next(p for p in report if p["name"] == "rss")["options"]["sources"]["rss"]
    assert rss["feeds"] == {"type": "array of string", "default": [], "description": "Feed URLs, feed files, or directories of feed files."}
    undocumented = [f"{p['name']}: {kind} {cls}.{key}" for p in report for kind, classes in p["options"].items() for cls, opts in classes.items() for key, o in opts.items() if not o.get("description")]
    assert undocumented == [], "every built-in option says what it does"


def test_a_dry_run_counts_what_the_next_run_does(tmp_path):
    """A dry run links authors to contacts as the run does (writing nothing), so records
    of linked authors are not counted as changed; on a first run and after inputs were
    only touched."""
    import os

    cfg = demo_copy(tmp_path) / "crmsync.toml"

    def counts(report):
        return {s["name"]: (s["created"], s["updated"]) for s in report["sinks"]}

    for step in ("first run", "inputs touched"):
        _, plan = run_json(cfg, "--dry-run")
        _, real = run_json(cfg)
        assert counts(plan) == counts(real), step
        for d in ("feeds", "mail", "reviews"):
            for f in (cfg.parent / d).iterdir():
                os.utime(f)
    assert counts(real) == {"crm_import": (0, 0)}


def test_ctrl_c_exits_130_with_a_report_and_loses_nothing(tmp_path):
    import signal
    import subprocess
    import time

    from .conftest import crmsync_cmd
    from .crm_e2e import export

    cfg = demo_copy(tmp_path, posts=9000) / "crmsync.toml"
    proc = subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = cfg.parent / ".crmsync" / "crmsync.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (db.exists() and db.stat().st_size > 200_000):
        time.sleep(0.05)  # interrupt once records are being stored
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    report = json.loads(out)
    assert report["status"] == "interrupted" and report["exit_code"] == 130 and "interrupted" in err
    code, again = run_json(cfg)
    assert code == 0, again
    stored = export(cfg)
    from crmsync_crm_csv import read_import_files

    held = {r["interaction_id"] for r in read_import_files(cfg.parent / "out")}
    assert len(stored) >= 9000 and held == set(stored), "the CRM files hold every stored interaction"


def test_json_logs_cover_errors_and_name_the_run_and_source(tmp_path):
    import subprocess

    from .conftest import crmsync_cmd
    from .crm_e2e import closed_port_url

    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.blogs]\nplugin = "rss"\nfeeds = ["nope/"]\n')
    res = subprocess.run([*crmsync_cmd(), "--log-format", "json", "-c", str(bad), "run"], capture_output=True, text=True)
    line = json.loads(res.stderr.strip().splitlines()[-1])
    assert res.returncode == 2 and line["level"] == "error" and line["exit_code"] == 2 and "feed path" in line["message"]
    cfg = demo_copy(tmp_path) / "crmsync.toml"
    cfg.write_text(cfg.read_text() + f'\n[sources.down]\nplugin = "rss"\nfeeds = ["{closed_port_url()}/feed.xml"]\nretries = 1\n')
    res = subprocess.run([*crmsync_cmd(), "--log-format", "json", "-c", str(cfg), "run", "--json"], capture_output=True, text=True)
    report = json.loads(res.stdout)
    lines = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert lines and all(set(x) >= {"time", "level", "logger", "message"} for x in lines)
    down = [x for x in lines if x.get("source") == "down"]
    assert down and all(x["run_id"] == report["run_id"] for x in down)


def test_a_dry_run_counts_what_the_run_does_on_a_bench_corpus(tmp_path):
    import os

    from .corpus_config import corpus_config, make_corpus

    corpus = make_corpus(tmp_path / "c", 1500, 5)
    cfg = corpus / "crmsync.toml"
    cfg.write_text(corpus_config(corpus))

    def counts(report):
        return {s["name"]: (s["created"], s["updated"]) for s in report["sinks"]}

    _, plan = run_json(cfg, "--dry-run")
    _, real = run_json(cfg)
    assert counts(plan) == counts(real) and counts(real)["crm_files"][0] > 1000
    for f in (corpus / "feeds").iterdir():
        os.utime(f)
    _, plan = run_json(cfg, "--dry-run")
    _, real = run_json(cfg)
    # (not zero: an item cross-posted to two feeds with different text is stored as the
    # later reading, and a re-read writes both readings again)
    assert counts(plan) == counts(real)


def test_progress_bars_show_a_total_when_the_source_knows_it(tmp_path):
    """A source's expect() reaches its bar (here a tqdm bar in this process)."""
    import io

    from tqdm import tqdm

    import crmsync
    from crmsync.pipeline.read import read_batches
    from crmsync.pipeline.report import SourceReport

    class Counted(crmsync.Source):
        name = "counted"

        def read(self, state):
            self.expect(3)
            for n in range(3):
                yield self.interaction(native_id=f"n{n}", kind="post", title="t")

    src = Counted("c", {}, crmsync.Context())
    out = io.StringIO()
    bar = tqdm(total=None, file=out, mininterval=0)
    read_batches("c", src.read(None), 10, SourceReport("c", "counted"), bar, lambda batch: None, expected=lambda: src.expected)
    assert bar.total == 3 and bar.n == 3
    bar.close()
    assert "3/3" in out.getvalue()
