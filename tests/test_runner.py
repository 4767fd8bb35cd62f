"""Runner semantics: re-runs, isolation, per-sink cursors, retries, dry runs, locks, quarantine replay."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import create_cli
from crmsync.host.config import load_config
from crmsync.contract.errors import LockedError
from crmsync.host.plugins import get_host
from crmsync.pipeline.run import Runner
from crmsync.store import Store

from .plugins import testplugins
from .plugins.testplugins import target_rows


@pytest.fixture
def host():
    h = get_host()
    h.add(testplugins)
    try:
        yield h
    finally:
        h.remove(testplugins.__name__)


def items(n, prefix="p"):
    return [{"id": f"{prefix}{i}", "title": f"title {i}"} for i in range(n)]


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


def write_config(tmp: Path, sources: dict, sinks: dict, enrichers: dict | None = None) -> Path:
    def table(kind, name, opts):
        lines = [f"[{kind}.{name}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in opts.items()]
        return "\n".join(lines)

    parts = ["[run]\nretry_max_wait = 0.2\nbatch_size = 4"]
    parts += [table("sources", n, o) for n, o in sources.items()]
    parts += [table("sinks", n, o) for n, o in sinks.items()]
    parts += [table("enrichers", n, o) for n, o in (enrichers or {}).items()]
    p = tmp / "crmsync.toml"
    p.write_text("\n\n".join(parts) + "\n")
    return p


def run(host, cfg_path, **kw):
    cfg = load_config(cfg_path, host)
    store = Store(cfg.store_url)
    try:
        return Runner(cfg, store, host).run(**kw)
    finally:
        store.dispose()


def test_second_run_delivers_nothing(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(10)}}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    first = run(host, p)
    assert (first.sources[0].new, first.sinks[0].delivered, first.exit_code) == (10, 10, 0)
    second = run(host, p)
    assert (second.sources[0].read, second.sinks[0].delivered, second.exit_code) == (0, 0, 0)
    rows = target_rows(tmp_path / "t.db")
    assert len(rows) == 10 and all(w == 1 for _, _, w in rows.values())


def test_edits_are_updates_not_new_rows(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(3)}}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    run(host, p)
    changed = items(3)
    changed[1]["title"] = "edited"
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": changed}}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    rep = run(host, p, full_refresh=True)
    assert (rep.sources[0].new, rep.sources[0].updated, rep.sources[0].unchanged) == (0, 1, 2)
    assert (rep.sinks[0].created, rep.sinks[0].updated) == (0, 1)
    rows = target_rows(tmp_path / "t.db")
    assert sorted(t for t, _, _ in rows.values()) == ["edited", "title 0", "title 2"]
    assert sorted(v for _, v, _ in rows.values()) == [1, 1, 2]


def test_a_failing_source_does_not_stop_the_others(host, tmp_path):
    p = write_config(
        tmp_path,
        {"bad": {"plugin": "list", "items": items(5, "b"), "fail_at": 3}, "good": {"plugin": "list", "items": items(4, "g")}},
        {"t": {"plugin": "sqlite_target", "db": "t.db"}},
    )
    rep = run(host, p)
    by = {s.name: s for s in rep.sources}
    assert by["bad"].status == "failed" and "upstream is gone" in by["bad"].errors[0]
    assert by["bad"].new == 3  # what came before the failure is kept
    assert by["good"].status == "ok" and by["good"].new == 4
    assert rep.exit_code == 1 and rep.sinks[0].delivered == 7
    cfg = load_config(p, host)
    store = Store(cfg.store_url)
    try:
        assert store.bookmarks.get("bad") == {"done": 3}  # resumes after the last good item
    finally:
        store.dispose()


def test_a_failing_sink_neither_blocks_nor_rewinds_another(host, tmp_path):
    sinks = {"ok": {"plugin": "sqlite_target", "db": "ok.db"}, "down": {"plugin": "sqlite_target", "db": "down.db", "fail": "always"}}
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(5)}}, sinks)
    rep = run(host, p)
    by = {s.name: s for s in rep.sinks}
    assert by["ok"].delivered == 5 and by["down"].status == "failed" and by["down"].backlog == 5
    assert rep.exit_code == 1
    sinks["down"]["fail"] = "never"
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(5)}}, sinks)
    rep = run(host, p)
    by = {s.name: s for s in rep.sinks}
    assert (by["ok"].delivered, by["down"].delivered, rep.exit_code) == (0, 5, 0)
    assert len(target_rows(tmp_path / "down.db")) == 5


def test_a_new_sink_receives_the_history(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(6)}}, {"one": {"plugin": "sqlite_target", "db": "1.db"}})
    run(host, p)
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(6)}}, {"one": {"plugin": "sqlite_target", "db": "1.db"}, "two": {"plugin": "sqlite_target", "db": "2.db"}})
    rep = run(host, p)
    by = {s.name: s for s in rep.sinks}
    assert (by["one"].delivered, by["two"].delivered) == (0, 6)


def test_sink_source_filter(host, tmp_path):
    p = write_config(
        tmp_path,
        {"a": {"plugin": "list", "items": items(2, "a")}, "b": {"plugin": "list", "items": items(3, "b")}},
        {"only_b": {"plugin": "sqlite_target", "db": "b.db", "sources": ["b"]}},
    )
    assert run(host, p).sinks[0].delivered == 3


def test_retriable_errors_are_retried(host, tmp_path):
    p = write_config(
        tmp_path,
        {"flaky": {"plugin": "list", "items": items(6), "fail_at": 4, "retriable_failures": 2, "retry_after": 0.01}},
        {"t": {"plugin": "sqlite_target", "db": "t.db", "fail": "retriable", "retriable_failures": 2}},
    )
    rep = run(host, p)
    s = rep.sources[0]
    assert (s.status, s.restarts, s.new) == ("ok", 2, 6)
    assert rep.sinks[0].status == "ok" and rep.sinks[0].delivered == 6
    assert all(w == 1 for _, _, w in target_rows(tmp_path / "t.db").values())


def test_retries_are_bounded(host, tmp_path):
    p = write_config(tmp_path, {"flaky": {"plugin": "list", "items": items(3), "fail_at": 1, "retriable_failures": 99}}, {})
    rep = run(host, p)
    assert rep.sources[0].status == "failed" and "flaky upstream" in rep.sources[0].errors[0]
    assert rep.sources[0].restarts == 4  # 5 attempts in all (the default)


def test_dry_run_writes_nothing(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(4)}}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    rep = run(host, p, dry_run=True)
    assert (rep.sources[0].new, rep.sinks[0].created, rep.sinks[0].updated) == (4, 4, 0)
    assert not (tmp_path / "t.db").exists()
    run(host, p)
    changed = items(5)
    changed[0]["title"] = "edited"
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": changed}}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    rep = run(host, p, dry_run=True, full_refresh=True)
    assert (rep.sinks[0].created, rep.sinks[0].updated) == (1, 1)
    cfg = load_config(p, host)
    store = Store(cfg.store_url)
    try:
        assert store.counts()["interactions"] == {"a": 4}
        assert store.bookmarks.get("a") == {"done": 4}
    finally:
        store.dispose()


def test_lock_blocks_a_second_run(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(2)}}, {})
    cfg = load_config(p, host)
    holder = Store(cfg.store_url)
    holder.locks.acquire_lock("run-holding-it")
    try:
        with pytest.raises(LockedError, match="run-holding-it"):
            run(host, p)
        r = CliRunner().invoke(create_cli(), ["-c", str(p), "run"])
        assert r.exit_code == 3 and "locked by run run-holding-it" in r.output and "--wait" in r.output
        threading.Timer(0.8, holder.locks.release).start()
        t0 = time.monotonic()
        rep = run(host, p, wait=True)
        assert rep.exit_code == 0 and time.monotonic() - t0 >= 0.5
    finally:
        holder.dispose()


def test_quarantine_and_replay_after_a_fix(host, tmp_path):
    src = {"plugin": "list", "items": items(4), "reject_ids": ["p1", "p2"]}
    p = write_config(tmp_path, {"a": src}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    rep = run(host, p)
    assert (rep.sources[0].new, rep.sources[0].quarantined, rep.exit_code) == (2, 2, 1)
    cli = create_cli()
    listing = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "list", "--json"])
    q = json.loads(listing.stdout)
    assert [i["ref"] for i in q] == ["item 1", "item 2"] and "reject list" in q[0]["reason"]
    shown = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "show", str(q[0]["id"]), "--raw"])
    assert json.loads(shown.stdout_bytes) == {"id": "p1", "title": "title 1"}
    # a re-run does not duplicate quarantine entries
    run(host, p, full_refresh=True)
    again = json.loads(CliRunner().invoke(cli, ["-c", str(p), "quarantine", "list", "--json"]).stdout)
    assert len(again) == 2 and again[0]["attempts"] == 2
    # replay before the fix: still open
    r = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "replay", "--all"])
    assert r.exit_code == 1 and "0 of 2 replayed" in r.output
    # the fix: p2 is no longer rejected
    src["reject_ids"] = ["p1"]
    p = write_config(tmp_path, {"a": src}, {"t": {"plugin": "sqlite_target", "db": "t.db"}})
    r = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "replay", "--all"])
    assert "1 of 2 replayed" in r.output
    rep = run(host, p)
    assert rep.sinks[0].delivered == 1
    assert len(target_rows(tmp_path / "t.db")) == 3
    status = json.loads(CliRunner().invoke(cli, ["-c", str(p), "status", "--json"]).stdout)
    assert status["quarantine_open"] == {"a": 1}


def test_enrichers_add_fields_and_failures_keep_records(host, tmp_path):
    its = [{"id": "q", "title": "Does it work?"}, {"id": "s", "title": "Great"}]
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": its}}, {}, {"flag": {"plugin": "flag"}, "broken": {"plugin": "broken"}})
    rep = run(host, p)
    assert rep.sources[0].new == 2 and "model file missing" in rep.sources[0].errors[0]
    cfg = load_config(p, host)
    store = Store(cfg.store_url)
    try:
        recs = {r.native_id: r for r, _ in store.interactions.iter()}
    finally:
        store.dispose()
    assert recs["q"].needs_response is True and recs["q"].priority == "high"
    assert recs["s"].needs_response is False


def test_unknown_selection_is_a_usage_error(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(1)}}, {})
    r = CliRunner().invoke(create_cli(), ["-c", str(p), "run", "--source", "zzz"])
    assert r.exit_code == 2 and "unknown source 'zzz'; configured: a" in r.output


def _with_run_keys(cfg: Path, keys: str) -> Path:
    cfg.write_text(cfg.read_text().replace("[run]\n", f"[run]\n{keys}\n", 1))
    return cfg


@pytest.mark.parametrize("workers", ["process", "thread"])
def test_sources_run_in_worker_processes_or_threads(host, tmp_path, workers):
    import os

    sources = {n: {"plugin": "list", "items": items(6, n), "note_pid": True} for n in ("a", "b", "c")}
    cfg = _with_run_keys(write_config(tmp_path, sources, {"t": {"plugin": "sqlite_target", "db": "t.db"}}), f'workers = "{workers}"\nconcurrency = 2')
    rep = run(host, cfg)
    assert rep.exit_code == 0, rep.as_dict()
    pids = {int(n.split()[1]) for s in rep.sources for n in s.notes if n.startswith("pid ")}
    assert len(pids) >= 1
    if workers == "process":
        assert os.getpid() not in pids  # read in forked workers...
    else:
        assert pids == {os.getpid()}
    # ...whose reports, counts and records all reach the run
    assert [(s.name, s.read, s.new, s.status) for s in rep.sources] == [(n, 6, 6, "ok") for n in ("a", "b", "c")]
    assert rep.sinks[0].delivered == 18 and len(target_rows(tmp_path / "t.db")) == 18


def test_a_worker_killed_mid_source_fails_it_and_the_next_run_delivers_all(host, tmp_path):
    sources = {"a": {"plugin": "list", "items": items(8, "a"), "die_at": 5}, "b": {"plugin": "list", "items": items(3, "b")}}
    cfg = _with_run_keys(write_config(tmp_path, sources, {"t": {"plugin": "sqlite_target", "db": "t.db"}}), 'workers = "process"\nconcurrency = 2')
    rep = run(host, cfg)
    a = rep.sources[0]
    assert a.status == "failed" and "worker process" in " ".join(a.errors), rep.as_dict()
    assert rep.exit_code == 1
    assert (rep.sources[1].status, rep.sources[1].new) == ("ok", 3)  # the other source is unaffected
    cfg.write_text(cfg.read_text().replace("die_at = 5", "die_at = -1"))
    again = run(host, cfg)
    assert again.exit_code == 0, again.as_dict()
    rows = target_rows(tmp_path / "t.db")
    # every item once, each written once: what the killed worker committed was kept
    assert len(rows) == 11 and {w for _t, _v, w in rows.values()} == {1}
    assert 0 < again.sources[0].new < 8 and rep.sinks[0].delivered + again.sinks[0].delivered == 11
    # the failed run reported what its worker had committed before it died
    assert a.new == 8 - again.sources[0].new and a.read >= a.new


def test_workers_die_with_a_killed_run(tmp_path):
    """SIGKILL of `crmsync run` leaves no worker process behind to write after it."""
    import signal
    import socket
    import subprocess

    from .conftest import crmsync_cmd

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # accepts connections and never answers: the workers hang in a fetch
    port = srv.getsockname()[1]
    try:
        cfg = tmp_path / "crmsync.toml"
        cfg.write_text(
            '[run]\nworkers = "process"\nconcurrency = 2\n'
            + "".join(f'[sources.f{n}]\nplugin = "rss"\nfeeds = ["http://127.0.0.1:{port}/{n}.xml"]\ntimeout = 120\n' for n in range(2))
        )
        proc = subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def children() -> list[int]:
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
            return [int(p) for p in out.split()]

        deadline = time.monotonic() + 60
        while len(children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = children()
        assert len(workers) >= 2, "the run did not start its worker processes"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _alive(p)]
            time.sleep(0.1)
        assert not alive, f"worker processes {alive} outlived the killed run"
    finally:
        srv.close()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) is gone for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_parallel_sink_is_split_over_workers_and_a_dead_worker_fails_it_only_for_now(host, tmp_path):
    sources = {"a": {"plugin": "list", "items": items(4500, "a")}}
    cfg = _with_run_keys(write_config(tmp_path, sources, {"t": {"plugin": "sqlite_parallel", "db": "t.db", "die_in_part": 1}}), 'workers = "process"\nconcurrency = 2')
    cfg.write_text(cfg.read_text().replace("batch_size = 4", "batch_size = 500"))
    rep = run(host, cfg)
    sink = rep.sinks[0]
    # part 0 delivered its half; part 1's worker died after two confirmed writes
    assert sink.status == "failed" and "worker process delivering part 2 of 2 died" in " ".join(sink.errors), rep.as_dict()
    # the living worker's report came back whole; the dead one's counts came per write
    assert "part 0" in sink.notes and "delivered by 2 worker processes" in sink.notes
    assert sink.delivered == len(target_rows(tmp_path / "t.db")) and 2000 < sink.delivered < 4500
    assert sink.backlog == 4500 - sink.delivered and rep.exit_code == 1
    cfg.write_text(cfg.read_text().replace("die_in_part = 1", "die_in_part = -1"))
    again = run(host, cfg)
    assert again.exit_code == 0 and again.sinks[0].delivered == 4500 - sink.delivered, again.as_dict()
    rows = target_rows(tmp_path / "t.db")
    assert len(rows) == 4500 and {w for _t, _v, w in rows.values()} == {1}


def test_a_record_the_target_refuses_is_quarantined_retried_and_closed_when_delivered(host, tmp_path):
    src = {"a": {"plugin": "list", "items": items(5)}}
    p = write_config(tmp_path, src, {"t": {"plugin": "sqlite_target", "db": "t.db", "refuse_titles": ["title 2"]}})
    first = run(host, p)
    sink = first.sinks[0]
    assert (sink.delivered, sink.rejected, sink.invalid, sink.backlog, first.exit_code) == (4, 1, 0, 1, 1)
    assert len(target_rows(tmp_path / "t.db")) == 4  # the rest of the batch landed
    second = run(host, p)  # still refused: tried again, one quarantine entry
    assert (second.sinks[0].delivered, second.sinks[0].rejected) == (0, 1)
    cli = create_cli()
    listed = json.loads(CliRunner().invoke(cli, ["-c", str(p), "quarantine", "list", "--source", "sink:t", "--json"]).output)
    assert len(listed) == 1 and listed[0]["attempts"] == 2 and "title 2" in listed[0]["reason"] and listed[0]["error_type"] == "SinkRejected"
    shown = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "show", str(listed[0]["id"]), "--raw"]).output
    assert json.loads(shown)["response"] == {"status": 400, "error": "REFUSED"}
    p = write_config(tmp_path, src, {"t": {"plugin": "sqlite_target", "db": "t.db"}})  # the cause is fixed
    third = run(host, p)
    assert (third.sinks[0].delivered, third.sinks[0].rejected, third.exit_code) == (1, 0, 0)
    assert len(target_rows(tmp_path / "t.db")) == 5
    after = json.loads(CliRunner().invoke(cli, ["-c", str(p), "quarantine", "list", "--status", "all", "--json"]).output)
    assert [i["status"] for i in after] == ["delivered"]


def test_dismissing_a_refused_record_stops_the_retries(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(3)}}, {"t": {"plugin": "sqlite_target", "db": "t.db", "refuse_titles": ["title 0"]}})
    assert run(host, p).sinks[0].rejected == 1
    cli = create_cli()
    (item,) = json.loads(CliRunner().invoke(cli, ["-c", str(p), "quarantine", "list", "--json"]).output)
    res = CliRunner().invoke(cli, ["-c", str(p), "quarantine", "dismiss", str(item["id"])])
    assert res.exit_code == 0 and "will not retry" in res.output
    again = run(host, p)
    assert (again.sinks[0].rejected, again.sinks[0].backlog, again.exit_code) == (0, 0, 0)


def test_a_write_that_partly_landed_is_retried_with_the_rest_only(host, tmp_path):
    p = write_config(tmp_path, {"a": {"plugin": "list", "items": items(10)}}, {"t": {"plugin": "sqlite_target", "db": "t.db", "fail": "partial", "retriable_failures": 2}})
    rep = run(host, p)
    assert (rep.sinks[0].status, rep.sinks[0].delivered, rep.exit_code) == ("ok", 10, 0)
    rows = target_rows(tmp_path / "t.db")
    assert len(rows) == 10 and all(w == 1 for _, _, w in rows.values()), "a row that landed before the error was written again"
    assert run(host, p).sinks[0].delivered == 0
