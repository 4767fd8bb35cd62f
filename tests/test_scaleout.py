"""Scale-out on one store: runs with disjoint sources side by side, one process per sink.

Real `crmsync run` processes started at the same moment over one store (SQLite, and
a real PostgreSQL server shared by four processes); afterwards the CRM import files
hold every interaction exactly once. The lock rules themselves are checked with a
lock held by the test: a busy source stops the run (exit 3, nothing done), a busy
sink is skipped and caught up by the next run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crmsync.store import Store
from crmsync_crm_csv import read_import_files

from .conftest import ROOT, crmsync_cmd

pytestmark = pytest.mark.slow

SOURCES = ["blogs_a", "blogs_b", "support_mail", "shop_reviews"]


def _dataset(target: Path, store_url: str | None = None, posts: int = 400) -> Path:
    """The demo, with its feeds split over two sources and ``posts`` more posts."""
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns(".crmsync", "out"))
    for half in ("a", "b"):
        (target / f"feeds_{half}").mkdir()
    for n, f in enumerate(sorted((target / "feeds").iterdir())):
        shutil.move(str(f), target / ("feeds_a" if n % 2 == 0 else "feeds_b") / f.name)
    per_feed = 25
    for f in range(posts // per_feed):
        items = "".join(
            f"<item><title>Post {f}-{i} about the Acme Rocket</title><link>https://scale{f}.example/p/{i}</link>"
            f"<guid>https://scale{f}.example/p/{i}</guid><pubDate>Mon, 02 Nov 2026 10:{i % 60:02d}:00 GMT</pubDate>"
            f"<description>Body {f}-{i}.</description></item>"
            for i in range(per_feed)
        )
        half = "a" if f % 2 == 0 else "b"
        (target / f"feeds_{half}" / f"scale-{f:02d}.rss.xml").write_text(f'<rss version="2.0"><channel><title>S{f}</title><link>https://scale{f}.example/</link>{items}</channel></rss>')
    cfg = (target / "crmsync.toml").read_text()
    store = f'[store]\nurl = "{store_url}"' if store_url else '[store]\npath = ".crmsync/crmsync.db"'
    cfg = cfg.replace('[store]\npath = ".crmsync/crmsync.db"', store + "\n\n[run]\nbatch_size = 25")
    cfg = cfg.replace('[sources.blogs]\nplugin = "rss"\nfeeds = ["feeds/"]', '[sources.blogs_a]\nplugin = "rss"\nfeeds = ["feeds_a/"]\n\n[sources.blogs_b]\nplugin = "rss"\nfeeds = ["feeds_b/"]')
    cfg = cfg.replace('output_dir = "out"', 'output_dir = "out"\nmax_rows_per_file = 50')
    (target / "crmsync.toml").write_text(cfg)
    return target / "crmsync.toml"


def _rows_per_version(out: Path) -> dict[tuple[str, str], int]:
    """How often each (interaction id, version) appears over every complete import file set.
    A later version of an interaction (an edit, or its author linked to a CRM contact by
    another process's contacts) is an update of the same record, not a duplicate."""
    counts: dict[tuple[str, str], int] = {}
    for manifest in out.glob("manifest-*.json"):
        for entry in json.loads(manifest.read_text())["files"]:
            if entry["source"] != "interaction":
                continue
            with open(out / entry["file"], encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    key = (row[entry["key"]], row["version"])
                    counts[key] = counts.get(key, 0) + 1
    return counts


def _start(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress", "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, dict]:
    out, err = proc.communicate(timeout=300)
    assert out, err
    return proc.returncode, json.loads(out)


def _crm_view(out: Path) -> dict[str, tuple[str, str, str]]:
    """What the CRM holds after importing every file set: id -> (title, body, linked contact)."""
    return {r["interaction_id"]: (r["title"], r["body_text"], r["author_crm_id"]) for r in read_import_files(out)}


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, tuple[str, str, str]]:
    """What the CRM holds after one uninterrupted single-process run."""
    cfg = _dataset(tmp_path_factory.mktemp("ref") / "data")
    rc, report = _finish(_start(cfg))
    assert rc == 0, report
    view = _crm_view(cfg.parent / "out")
    assert len(view) == 400 + 12 and sum(1 for v in view.values() if v[2]) >= 3
    return view


def _check_parallel(cfg: Path, groups: list[list[str]], expected: dict) -> None:
    procs = [_start(cfg, "--wait", *[a for s in group for a in ("--source", s)]) for group in groups]
    results = [_finish(p) for p in procs]
    for rc, report in results:
        assert rc == 0, report
        assert report["sinks"][0]["status"] == "ok", report
    # every source ran once, in the process that owns it
    ran = sorted(s["name"] for _, r in results for s in r["sources"])
    assert ran == sorted(s for g in groups for s in g)
    counts = _rows_per_version(cfg.parent / "out")
    assert {n for n in counts.values()} == {1}, "an interaction version was delivered twice"
    # same final CRM state as one process, author links included (the relink pass)
    assert _crm_view(cfg.parent / "out") == expected
    rc, again = _finish(_start(cfg))
    assert rc == 0 and again["sinks"][0]["delivered"] == 0 and sum(s["new"] for s in again["sources"]) == 0, again


def test_two_processes_with_disjoint_sources_on_sqlite(tmp_path, expected):
    cfg = _dataset(tmp_path / "data")
    _check_parallel(cfg, [["blogs_a", "crm_contacts", "support_mail"], ["blogs_b", "shop_reviews"]], expected)


@pytest.mark.postgres
def test_four_processes_share_one_postgresql_store(tmp_path, pg_database, expected):
    cfg = _dataset(tmp_path / "data", store_url=pg_database)
    _check_parallel(cfg, [["blogs_a", "crm_contacts"], ["blogs_b"], ["support_mail"], ["shop_reviews"]], expected)


def test_busy_source_stops_the_run_and_busy_sink_is_skipped(tmp_path):
    cfg = _dataset(tmp_path / "data", posts=50)
    store = Store(f"sqlite:///{tmp_path / 'data' / '.crmsync' / 'crmsync.db'}")
    env = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    try:
        store.locks.acquire_locks("holder-run", ["source:blogs_a", "sink:crm_import"])
        res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress", "--source", "blogs_a"], capture_output=True, text=True, env=env)
        assert res.returncode == 3 and "source blogs_a" in res.stderr and "locked by run holder-run" in res.stderr, res.stderr
        # another source is free: it runs; the sink is busy, so it is skipped with its backlog kept
        rc, report = _finish(_start(cfg, "--source", "blogs_b"))
        assert rc == 3, report
        (sink,) = report["sinks"]
        assert sink["status"] == "locked" and sink["delivered"] == 0 and sink["backlog"] > 0 and "holder-run" in sink["notes"][0]
        assert report["sources"][0]["status"] == "ok" and report["sources"][0]["new"] > 0
    finally:
        store.locks.release()
        store.dispose()
    rc, report = _finish(_start(cfg, "--source", "blogs_b"))
    assert rc == 0 and report["sinks"][0]["delivered"] == sink["backlog"], report


def test_two_full_runs_at_once_on_one_store(tmp_path, expected):
    """The same job started twice at the same moment (a cron overlap): the second waits
    for the first's sources and sinks, then finds nothing left to do."""
    cfg = _dataset(tmp_path / "data")
    procs = [_start(cfg, "--wait") for _ in range(2)]
    results = [_finish(p) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert sum(r["sinks"][0]["delivered"] for _, r in results) == len(expected)
    counts = _rows_per_version(cfg.parent / "out")
    assert set(counts.values()) == {1}, "an interaction version was delivered twice"
    assert _crm_view(cfg.parent / "out") == expected
