"""Exactly once under SIGKILL: kill `crmsync run` at many points, run again, check the CRM files.

Each case kills a real `crmsync run` subprocess with SIGKILL, either at a
named failpoint (CRMSYNC_FAILPOINTS) or after a random delay, runs it again
until it completes, and checks that importing every complete file set gives
exactly the interactions of an uninterrupted run, and that a further run
delivers nothing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from crmsync_crm_csv import read_import_files

from .conftest import ROOT, crmsync_cmd

pytestmark = pytest.mark.slow


def _make_dataset(target: Path, posts: int = 240, per_feed: int = 30) -> Path:
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns(".crmsync", "out"))
    feeds = target / "feeds"
    for f in range(posts // per_feed):
        items = "\n".join(
            f"<item><title>Post {f}-{i} about the Acme Rocket</title><link>https://bulk{f}.example/p/{i}</link>"
            f"<guid>https://bulk{f}.example/p/{i}</guid><pubDate>Mon, 02 Nov 2026 10:{i % 60:02d}:00 GMT</pubDate>"
            f"<description>Body {f}-{i}, line one.\nLine two, with a comma.</description></item>"
            for i in range(per_feed)
        )
        (feeds / f"bulk-{f:02d}.rss.xml").write_text(f'<rss version="2.0"><channel><title>Bulk {f}</title><link>https://bulk{f}.example/</link>{items}</channel></rss>')
    cfg = (target / "crmsync.toml").read_text()
    cfg = cfg.replace('[store]\npath = ".crmsync/crmsync.db"', '[store]\npath = ".crmsync/crmsync.db"\n\n[run]\nbatch_size = 16')
    cfg = cfg.replace('output_dir = "out"', 'output_dir = "out"\nmax_rows_per_file = 60')
    (target / "crmsync.toml").write_text(cfg)
    return target / "crmsync.toml"


def _run(cfg: Path, failpoints: str | None = None, timeout: float = 120) -> int:
    env = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    if failpoints:
        env["CRMSYNC_FAILPOINTS"] = failpoints
    return subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], env=env, capture_output=True, timeout=timeout).returncode


def _crm_view(out: Path) -> dict[str, tuple[str, str]]:
    rows = read_import_files(out)
    ids = [r["external_id"] for r in rows]
    assert len(ids) == len(set(ids))
    return {r["external_id"]: (r["title"], r["body_text"]) for r in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[str, str]]:
    cfg = _make_dataset(tmp_path_factory.mktemp("ref") / "data")
    assert _run(cfg) == 0
    view = _crm_view(cfg.parent / "out")
    assert len(view) == 240 + 12
    return view


@pytest.fixture(scope="module")
def big_reference(tmp_path_factory) -> tuple[dict[str, tuple[str, str]], float]:
    cfg = _make_dataset(tmp_path_factory.mktemp("bigref") / "data", posts=3000)
    t0 = time.monotonic()
    assert _run(cfg) == 0
    return _crm_view(cfg.parent / "out"), time.monotonic() - t0


def _finish_and_check(cfg: Path, reference: dict) -> None:
    for _ in range(3):
        rc = _run(cfg)
        if rc == 0:
            break
    assert rc == 0
    out = cfg.parent / "out"
    assert _crm_view(out) == reference
    assert not list(out.glob(".*.tmp")), "a completed run leaves no temporary files"
    # nothing left to deliver
    env = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--json"], env=env, capture_output=True, text=True, check=True)
    import json

    report = json.loads(res.stdout)
    assert report["sinks"][0]["delivered"] == 0 and report["sources"][0]["new"] == 0


@pytest.mark.parametrize(
    "failpoint",
    [
        # one case per point here; tests/torture kills at random points and counts
        "source.before_commit:2",
        "source.after_commit:7",
        "sink.after_write:2",
        "sink.after_flush:3",
        "sink.after_ledger:2",
    ],
)
def test_sigkill_at_failpoint_then_rerun_is_exactly_once(tmp_path, reference, failpoint):
    cfg = _make_dataset(tmp_path / "data")
    rc = _run(cfg, failpoint)
    assert rc == -signal.SIGKILL, f"the failpoint {failpoint} was not reached (rc={rc})"
    _finish_and_check(cfg, reference)


@pytest.mark.parametrize("seed", [1])
def test_sigkill_at_random_times_is_exactly_once(tmp_path, big_reference, seed):
    reference, duration = big_reference
    cfg = _make_dataset(tmp_path / "data", posts=3000)
    rnd = random.Random(seed)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # somewhere between interpreter start-up and the end of an uninterrupted run
        time.sleep(rnd.uniform(0.2, duration * 0.9))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 1
    _finish_and_check(cfg, reference)


@pytest.mark.parametrize("profile", ["salesforce", "hubspot"])
def test_sigkill_with_crm_profiles(tmp_path, profile):
    def dataset(name: str) -> Path:
        cfg = _make_dataset(tmp_path / name)
        cfg.write_text(cfg.read_text().replace('profile = "generic"', f'profile = "{profile}"'))
        return cfg

    ref, crashed = dataset("ref"), dataset("crashed")
    assert _run(ref) == 0
    assert _run(crashed, "sink.after_flush:2") == -signal.SIGKILL
    assert _run(crashed) == 0
    for kind in [None, "leads"] if profile == "salesforce" else [None]:
        want = sorted(read_import_files(ref.parent / "out", kind=kind), key=lambda r: r["interaction_id" if kind is None else "identity_id"])
        got = sorted(read_import_files(crashed.parent / "out", kind=kind), key=lambda r: r["interaction_id" if kind is None else "identity_id"])
        assert got == want and len(got) > 0


# a sink delivered by several worker processes (Sink.parallel: crm_csv) -------------
def _reviews_dataset(target: Path, reviews: int = 5000, concurrency: int = 2) -> Path:
    target.mkdir()
    rows = ["review_id,created_at,stars,title,body,reviewer_name,reviewer_email,product,product_id,reply"]
    rows += [f"RV-{n},2026-10-{1 + n % 28:02d} 10:00:00,{1 + n % 5},Review {n},\"Body of review {n}, with a comma.\",Person {n % 700},p{n % 700}@people.example,Acme Rocket,ACME-1," for n in range(reviews)]
    (target / "reviews.csv").write_text("\n".join(rows) + "\n")
    cfg = target / "crmsync.toml"
    cfg.write_text(
        f'[store]\npath = "state.db"\n\n[run]\nconcurrency = {concurrency}\nbatch_size = 250\n\n'
        '[sources.shop]\nplugin = "reviews"\nfiles = ["reviews.csv"]\nplatform = "shop"\n\n'
        '[sinks.crm]\nplugin = "crm_csv"\noutput_dir = "out"\nmax_rows_per_file = 400\n'
    )
    return cfg


def test_a_sink_in_worker_processes_delivers_exactly_once_through_kills(tmp_path):
    serial = _reviews_dataset(tmp_path / "serial", concurrency=1)
    assert _run(serial) == 0
    want = _crm_view(serial.parent / "out")
    assert len(want) == 5000

    # uninterrupted: two workers, each over half the ids, the same CRM view as one
    parallel = _reviews_dataset(tmp_path / "parallel")
    res = subprocess.run([*crmsync_cmd(), "-c", str(parallel), "run", "--json", "--no-progress"], capture_output=True, text=True, timeout=120)
    sink = json.loads(res.stdout)["sinks"][0]
    assert res.returncode == 0 and sink["delivered"] == 5000 and sink["backlog"] == 0, sink
    assert "delivered by 2 worker processes" in sink["notes"], sink
    assert {p.name.split("-")[-2] for p in (parallel.parent / "out").glob("manifest-*.json")} == {"p0", "p1"}
    assert _crm_view(parallel.parent / "out") == want

    # killed in a worker (the failpoint kills the whole run) at write, flush and ledger
    crashed = _reviews_dataset(tmp_path / "crashed")
    kills = 0
    for fp in ["sink.after_write:3", "sink.after_flush:2", "sink.after_ledger:2", "sink.after_flush:1"]:
        code = _run(crashed, fp)
        assert code in (0, -signal.SIGKILL), code
        kills += code == -signal.SIGKILL
    assert kills >= 3
    assert _run(crashed) == 0
    assert _crm_view(crashed.parent / "out") == want
    res = subprocess.run([*crmsync_cmd(), "-c", str(crashed), "run", "--json", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert json.loads(res.stdout)["sinks"][0]["delivered"] == 0
