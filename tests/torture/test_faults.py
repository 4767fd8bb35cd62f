"""Faults around a full-corpus run: a flaky HTTP server, a full disk under the sink,
the SQLite store locked by another process. Each run either completes with
everything delivered or fails with a clear error, and the next run delivers the
rest, each interaction exactly once."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import assert_exactly_once, report, run, serve_feeds, truth_keys, write_config

FAULTS = ["500", "429", "reset", "truncated", "slow"]


def _third_of_the_feeds(corpus: Path):
    """Every third feed fails its first two requests, the faults taken in turn."""
    paths = sorted(f"/feeds/{f.name}" for f in (corpus / "feeds").iterdir())
    faulty = {p: i for i, p in enumerate(paths[::3])}

    def faults(path: str, attempt: int) -> str | None:
        i = faulty.get(path)
        return None if i is None or attempt > 2 else FAULTS[(i + attempt - 1) % len(FAULTS)]

    return faults


def test_flaky_http_server_still_delivers_everything(corpus):
    server, urls = serve_feeds(corpus, _third_of_the_feeds(corpus))
    try:
        cfg = write_config(corpus, feeds=urls, extra="\n[run]\nretry_attempts = 4\nretry_max_wait = 2\n")
        res = run(cfg, "--json")
        rep = report(res)
        assert res.returncode == 0, (rep["sources"], res.stderr[-2000:])
        faults = [f for _, _, f in server.log if f]
        assert {"500", "429", "reset", "truncated", "slow"} <= set(faults), set(faults)
    finally:
        server.close()
    assert_exactly_once(corpus / "out", truth_keys(corpus))


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_under_the_sink_then_recovery(corpus, tmp_path):
    cfg = write_config(corpus, extra="max_rows_per_file = 200\n")
    mount = tmp_path / "small"
    with _tiny_disk(mount, "256k"):
        cfg.write_text(cfg.read_text().replace('output_dir = "out"', f'output_dir = "{mount}"'))
        res = run(cfg, "--json")
        rep = report(res)
        (sink,) = rep["sinks"]
        assert res.returncode == 1 and sink["status"] in ("failed", "partial"), rep
        assert "No space left on device" in " ".join(sink["errors"]), sink["errors"]
        assert sink["backlog"] > 0
        assert not list(mount.glob(".*.tmp")), "a failed write leaves no temporary file behind"
        delivered_first = sink["delivered"]
        # room again: move what landed to a big directory and point the sink there
        out = corpus / "out"
        out.mkdir()
        for f in mount.iterdir():
            shutil.move(str(f), out / f.name)
    cfg.write_text(cfg.read_text().replace(f'output_dir = "{mount}"', 'output_dir = "out"'))
    res = run(cfg, "--json")
    rep = report(res)
    assert res.returncode == 0 and rep["sinks"][0]["delivered"] == sink["backlog"], rep
    held = assert_exactly_once(out, truth_keys(corpus))
    assert len(held) == delivered_first + sink["backlog"]


def test_store_locked_by_another_process(corpus):
    cfg = write_config(corpus)
    first = run(cfg, "--json", "--source", "crm")
    assert first.returncode == 0, first.stderr
    db = corpus / "state" / "crmsync.db"
    locked = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(4)
        con.execute("COMMIT")
        con.close()

    t = threading.Thread(target=hold)
    t.start()
    assert locked.wait(10)
    t0 = time.monotonic()
    res = run(cfg, "--json")
    t.join()
    rep = report(res)
    assert res.returncode == 0, (rep, res.stderr[-2000:])
    assert time.monotonic() - t0 >= 3.5, "the run did not wait for the other process's lock"
    assert_exactly_once(corpus / "out", truth_keys(corpus))
