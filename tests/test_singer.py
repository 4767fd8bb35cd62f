"""Singer interop with real packages: crmsync sources as singer-sdk taps (the SDK's own tap
tests), target-jsonl as a sink, a Singer CSV tap as a source, in their own virtual environments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from crmsync.store import Store

from .conftest import ROOT, crmsync_cmd

pytest.importorskip("singer_sdk", reason="singer-sdk is in the test extra: pip install -e '.[test]'")

from singer_sdk.testing import get_tap_test_class  # noqa: E402

from crmsync.cli.singer import make_tap_class  # noqa: E402

DEMO = ROOT / "demo"

TestRssTap = get_tap_test_class(tap_class=make_tap_class("rss"), config={"feeds": [str(DEMO / "feeds")], "enrichers": ["language"]})
TestReviewsTap = get_tap_test_class(tap_class=make_tap_class("reviews"), config={"files": [str(DEMO / "reviews" / "reviews.csv")], "platform": "shop"})


def _tap_records(plugin: str, config: dict, tmp: Path, state: dict | None = None) -> tuple[list[dict], dict | None]:
    (tmp / "c.json").write_text(json.dumps(config))
    args = [*crmsync_cmd(), "tap", plugin, "--config", str(tmp / "c.json")]
    if state is not None:
        (tmp / "s.json").write_text(json.dumps(state))
        args += ["--state", str(tmp / "s.json")]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    msgs = [json.loads(line) for line in out.splitlines() if line.strip()]
    states = [m["value"] for m in msgs if m["type"] == "STATE"]
    return [m["record"] for m in msgs if m["type"] == "RECORD"], (states[-1] if states else None)


def test_primary_keys_unique_and_state_resumes(tmp_path):
    # singer-sdk's own uniqueness check is a no-op in 0.54 (it builds a set of generators): check it here
    records, state = _tap_records("email", {"paths": [str(DEMO / "mail" / "support.mbox")], "enrichers": ["sentiment"]}, tmp_path)
    ids = [r["interaction_id"] for r in records]
    assert len(ids) == len(set(ids)) == 4 and all(r["sentiment"] for r in records)
    again, _ = _tap_records("email", {"paths": [str(DEMO / "mail" / "support.mbox")]}, tmp_path, state=state)
    assert again == []


def test_tap_about_and_discover(tmp_path):
    about = json.loads(subprocess.run([*crmsync_cmd(), "tap", "rss", "--about", "--format", "json"], capture_output=True, text=True, check=True).stdout)
    assert about["name"] == "tap-crmsync-rss" and "feeds" in about["settings"]["properties"]
    (tmp_path / "c.json").write_text(json.dumps({"feeds": [str(DEMO / "feeds")]}))
    catalog = json.loads(subprocess.run([*crmsync_cmd(), "tap", "rss", "--config", str(tmp_path / "c.json"), "--discover"], capture_output=True, text=True, check=True).stdout)
    (stream,) = catalog["streams"]
    assert stream["tap_stream_id"] == "interactions" and stream["key_properties"] == ["interaction_id"]


# real Singer packages, each in its own virtual environment ----------------------------
def _venv_with(tmp_root: Path, name: str, requirement: str) -> Path:
    home = tmp_root / name
    venv.create(home, with_pip=True)
    res = subprocess.run([str(home / "bin" / "pip"), "install", "-q", requirement], capture_output=True, text=True)
    if res.returncode != 0:
        msg = f"cannot install {requirement} from PyPI: {res.stderr[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return home / "bin"


@pytest.fixture(scope="session")
def target_jsonl(tmp_path_factory) -> Path:
    return _venv_with(tmp_path_factory.mktemp("venvs"), "target-jsonl", "target-jsonl==0.1.4") / "target-jsonl"


@pytest.fixture(scope="session")
def tap_jsonl(tmp_path_factory) -> Path:
    # a singer-sdk file tap from PyPI (the MeltanoLabs CSV tap is not published there)
    return _venv_with(tmp_path_factory.mktemp("venvs"), "tap-jsonl", "tap-jsonl==0.3.1") / "tap-jsonl"


def _run(cfg: Path) -> dict:
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--json"], capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def test_singer_target_as_sink(tmp_path, target_jsonl):
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns(".crmsync", "out"))
    out = tmp_path / "jsonl"
    out.mkdir()
    cfg = tmp_path / "demo" / "crmsync.toml"
    text = cfg.read_text().split("[sinks.crm_import]")[0]
    cfg.write_text(text + f'[sinks.singer_out]\nplugin = "singer"\ncommand = ["{target_jsonl}"]\nconfig = {{ destination_path = "{out}", do_timestamp_file = false }}\n')
    report = _run(cfg)
    assert report["sinks"][0]["status"] == "ok" and report["sinks"][0]["delivered"] == 12, report
    lines = (out / "interactions.jsonl").read_text().splitlines()
    ids = [json.loads(line)["interaction_id"] for line in lines]
    assert len(ids) == len(set(ids)) == 12
    assert _run(cfg)["sinks"][0]["delivered"] == 0


def test_ledger_waits_for_the_targets_state(tmp_path):
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns(".crmsync", "out"))
    fake = tmp_path / "bad-target"
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho 'disk full' >&2\nexit 1\n")
    fake.chmod(0o755)
    cfg = tmp_path / "demo" / "crmsync.toml"
    cfg.write_text(cfg.read_text().split("[sinks.crm_import]")[0] + f'[sinks.singer_out]\nplugin = "singer"\ncommand = ["{fake}"]\n')
    report = _run(cfg)
    sink = report["sinks"][0]
    assert sink["status"] == "failed" and "disk full" in sink["errors"][0] and sink["delivered"] == 0 and sink["backlog"] == 12



_FLAKY_TARGET = """#!{python}
# a Singer target that writes its records at each STATE (as real targets flush) and echoes
# the STATE; while the file 'fail' exists it dies at the second STATE, before writing
import json, os, sys
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "records.jsonl")
fail = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fail"))
buffered, states = [], 0
for line in sys.stdin:
    msg = json.loads(line)
    if msg["type"] == "RECORD":
        buffered.append(msg["record"]["interaction_id"])
    elif msg["type"] == "STATE":
        states += 1
        if fail and states == 2:
            sys.stderr.write("disk full\\n")
            sys.exit(1)
        with open(out, "a") as fh:
            fh.writelines(i + "\\n" for i in buffered)
        buffered = []
        print(json.dumps(msg["value"]), flush=True)
"""


def test_what_the_target_confirmed_before_failing_is_not_sent_again(tmp_path):
    import sys

    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns(".crmsync", "out"))
    target = tmp_path / "target"
    target.mkdir()
    script = target / "flaky-target"
    script.write_text(_FLAKY_TARGET.format(python=sys.executable))
    script.chmod(0o755)
    (target / "fail").touch()
    cfg = tmp_path / "demo" / "crmsync.toml"
    cfg.write_text(cfg.read_text().split("[sinks.crm_import]")[0] + f'[sinks.singer_out]\nplugin = "singer"\ncommand = ["{script}"]\nbatch_size = 5\n')
    sink = _run(cfg)["sinks"][0]
    # batch 1 (5 records) was confirmed by its STATE, batch 2 died with the target
    assert sink["status"] == "failed" and "disk full" in sink["errors"][0], sink
    assert sink["delivered"] == 5 and sink["backlog"] == 7, sink
    assert any("confirmed by the target's STATE before it failed" in n for n in sink["notes"]), sink
    (target / "fail").unlink()
    sink = _run(cfg)["sinks"][0]
    assert sink["status"] == "ok" and sink["delivered"] == 7 and sink["backlog"] == 0, sink
    ids = (target / "records.jsonl").read_text().split()
    assert len(ids) == len(set(ids)) == 12


def test_singer_tap_as_source(tmp_path, tap_jsonl):
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"id": "r1", "author": "Ann", "email": "ann@example.org", "text": "Great rocket", "stars": 5, "when": "2026-11-01T10:00:00Z"},
        {"id": "r2", "author": "Bo", "email": "bo@example.org", "text": "Broke fast", "stars": 1, "when": "2026-11-02T10:00:00Z"},
    ]
    (data / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text(
        f'[sources.jsontap]\nplugin = "singer"\ncommand = ["{tap_jsonl}"]\nchannel = "review"\n'
        f'config = {{ path = "{data}/*.jsonl", stream_name = "reviews", primary_keys = ["id"] }}\n'
        '[sources.jsontap.streams.reviews]\nkind = "review"\nfields = { native_id = "id", author_name = "author", author_email = "email", body_text = "text", rating = "stars", published = "when" }\n'
    )
    report = _run(cfg)
    s = report["sources"][0]
    assert s["status"] == "ok" and s["new"] == 2, report

    def stored() -> tuple[dict, dict]:
        store = Store(f"sqlite:///{tmp_path / '.crmsync' / 'crmsync.db'}")
        try:
            return {r.native_id: r for r, _ in store.interactions.iter()}, store.bookmarks.get("jsontap")
        finally:
            store.dispose()

    recs, bookmark = stored()
    assert recs["r2"].rating.normalized == 0.0 and recs["r1"].author.emails == ["ann@example.org"] and recs["r1"].kind == "review"
    assert recs["r1"].published.isoformat() == "2026-11-01T10:00:00+00:00"
    # the tap's own STATE is the bookmark, handed back with --state on the next run
    assert "a.jsonl" in json.dumps(bookmark["singer_state"])
    assert _run(cfg)["sources"][0]["new"] == 0
    (data / "b.jsonl").write_text(json.dumps({**rows[0], "id": "r3", "text": "Second order"}) + "\n")
    report = _run(cfg)
    assert report["sources"][0]["new"] == 1, report
    recs, bookmark = stored()
    assert sorted(recs) == ["r1", "r2", "r3"] and "b.jsonl" in json.dumps(bookmark["singer_state"])


def test_forget_sends_a_real_target_a_deletion_record_per_interaction(tmp_path, target_jsonl):
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns(".crmsync", "out"))
    out = tmp_path / "jsonl"
    out.mkdir()
    cfg = tmp_path / "demo" / "crmsync.toml"
    text = cfg.read_text().split("[sinks.crm_import]")[0]
    cfg.write_text(text + f'[sinks.singer_out]\nplugin = "singer"\ncommand = ["{target_jsonl}"]\nconfig = {{ destination_path = "{out}", do_timestamp_file = false }}\n')
    assert _run(cfg)["sinks"][0]["delivered"] == 12
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "forget", "--email", "tom.baker@example.org", "--yes", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["sinks"] == [{"sink": "singer_out", "deleted": 4, "left": [], "error": None, "people_deleted": 1, "people_note": None}]
    lines = [json.loads(line) for line in (out / "interactions.jsonl").read_text().splitlines()]
    deleted = [r for r in lines if r.get("_sdc_deleted_at")]
    assert len(deleted) == 4 and all(set(r) == {"interaction_id", "_sdc_deleted_at"} for r in deleted)
