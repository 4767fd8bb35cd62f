"""Torture-suite fixtures: the shared corpus (small in CI, larger with
CRMSYNC_TORTURE=long), a fault-injecting loopback HTTP server, helpers to run
real `crmsync run` processes and to read what the CRM would hold."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT, crmsync_cmd
from ..corpus_config import corpus_config, make_corpus
from ..feedserver import FeedServer

SHARED = ROOT.parent / "shared"
LONG = os.environ.get("CRMSYNC_TORTURE") == "long"
CORPUS_SIZE = 20_000 if LONG else 1_500

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def corpus_template(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("torture-corpus") / "c", CORPUS_SIZE, 11)


@pytest.fixture
def corpus(tmp_path, corpus_template) -> Path:
    """A private copy of the corpus."""
    target = tmp_path / "c"
    shutil.copytree(corpus_template, target)
    return target


def truth_keys(corpus: Path) -> set[str]:
    return {i["key"] for i in json.loads((corpus / "crm" / "truth.json").read_text())["interactions"]}


def run(cfg: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "CRMSYNC_FAILPOINTS"}
    return subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress", *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout, **kw)


def report(res: subprocess.CompletedProcess) -> dict[str, Any]:
    assert res.stdout, res.stderr[-3000:]
    return json.loads(res.stdout)


def crm_rows(out: Path) -> list[dict[str, str]]:
    """Every interaction row of every complete file set (a set is complete when
    its manifest exists and the checksums match), in import order."""
    rows = []
    manifests = [(json.loads(m.read_text()), m) for m in out.glob("manifest-*.json")]
    for data, _ in sorted(manifests, key=lambda dm: (dm[0]["written_at"], dm[1].name)):
        for entry in data["files"]:
            if entry["source"] != "interaction":
                continue
            raw = (out / entry["file"]).read_bytes()
            assert hashlib.sha256(raw).hexdigest() == entry["sha256"], entry["file"]
            with open(out / entry["file"], encoding="utf-8", newline="") as fh:
                rows.extend(csv.DictReader(fh))
    return rows


def assert_exactly_once(out: Path, expected_native_ids: set[str], *, resent_ok: bool = False) -> list[dict[str, str]]:
    """The CRM, after importing every file set (upserts by external id), holds each
    expected interaction once. Unless ``resent_ok``, no version of an interaction was
    written twice either; after a SIGKILL between a file set's rename and the ledger
    update the next run re-sends that set, which the upsert makes harmless."""
    rows = crm_rows(out)
    versions = [(r["external_id"], r["version"]) for r in rows]
    if not resent_ok and len(versions) != len(set(versions)):
        seen: set[tuple[str, str]] = set()
        dupes = {v for v in versions if v in seen or seen.add(v)}
        raise AssertionError(f"{len(dupes)} interaction versions were delivered twice, e.g. {sorted(dupes)[:3]}")
    held = {r["external_id"]: r for r in rows}
    native = [r["native_id"] for r in held.values()]
    assert len(native) == len(set(native)), "two CRM records for one native id"
    missing = expected_native_ids - set(native)
    extra = set(native) - expected_native_ids
    assert not missing and not extra, f"missing {len(missing)} (e.g. {sorted(missing)[:3]}), unexpected {len(extra)} (e.g. {sorted(extra)[:3]})"
    return list(held.values())


def quarantine(cfg: Path) -> list[dict[str, Any]]:
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "quarantine", "list", "--json"], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def serve_feeds(corpus: Path, faults: Any = None) -> tuple[FeedServer, list[str]]:
    files = sorted((corpus / "feeds").iterdir())
    server = FeedServer({f"/feeds/{f.name}": f.read_bytes() for f in files}, faults)
    return server, [server.url(f"/feeds/{f.name}") for f in files]


def write_config(corpus: Path, feeds: list[str] | None = None, extra: str = "", **kw: Any) -> Path:
    cfg = corpus / "crmsync.toml"
    cfg.write_text(corpus_config(corpus, feeds=feeds, extra=extra, **kw))
    return cfg


__all__ = ["LONG", "FeedServer", "assert_exactly_once", "crm_rows", "quarantine", "report", "run", "serve_feeds", "truth_keys", "write_config"]
