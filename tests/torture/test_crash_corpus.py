"""SIGKILL at 20 random points of a full-corpus run, then run to completion.

The corpus (every source: feeds over loopback HTTP, mbox, Maildir, the three
review exports, CRM contacts) gets three truly bad inputs on top. Each dataset is
killed again and again as it progresses: at named failpoints with random hit counts (store commit,
sink write, file-set flush, ledger update) and at random moments (fetch, parse,
enrichment). After every kill the next run resumes from what is durable; after
the last, a run to completion must leave the CRM files holding every interaction
of the truth file exactly once, and the quarantine holding exactly the bad inputs.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..conftest import crmsync_cmd
from .conftest import LONG, assert_exactly_once, quarantine, report, run, serve_feeds, truth_keys, write_config

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title><item><guid>https://bomb.example/1</guid><title>&lol3;</title></item></channel></rss>"""
GARBAGE = b"\x00\x01\x02 this is not a feed \xff\xfe" * 50
POINTS = ["source.before_commit", "source.after_commit", "sink.after_write", "sink.after_flush", "sink.after_ledger"]


def _add_bad_inputs(corpus: Path) -> None:
    (corpus / "feeds" / "zz-bomb.rss.xml").write_bytes(BOMB)
    (corpus / "feeds" / "zz-garbage.rss.xml").write_bytes(GARBAGE)
    reviews = corpus / "reviews" / "reviews.csv"
    reviews.write_text(reviews.read_text(encoding="utf-8") + 'RV-BROKEN-1,not a date at all,eleven,Bad row,"body",Someone,someone@example.org,Acme Rocket,shop\n', encoding="utf-8")


def _prepare(corpus: Path, urls: list[str]) -> Path:
    return write_config(corpus, feeds=urls, extra="max_rows_per_file = 120\n\n[run]\nbatch_size = 40\n")


def _held(out: Path, truth: set[str]) -> dict[str, dict[str, str]]:
    # a resumed run may deliver a later version as an update; an unknown author's
    # identity id is the first of their keys the store saw, which depends on the order
    # the (concurrent) sources ran in: compared below as a grouping instead
    skip = {"version", "operation", "author_identity_id", "content_hash"}
    return {r["external_id"]: {**{c: v for c, v in r.items() if c not in skip}, "_author": r["author_identity_id"]} for r in assert_exactly_once(out, truth)}


def _authors(held: dict[str, dict[str, str]]) -> set[frozenset[str]]:
    """Which interactions share an author identity (the CRM's person records)."""
    groups: dict[str, set[str]] = {}
    for r in held.values():
        if r["_author"]:
            groups.setdefault(r["_author"], set()).add(r["native_id"])
    return {frozenset(g) for g in groups.values()}


def _check_quarantine_and_rerun(target: Path) -> None:
    # the quarantine holds exactly the three bad inputs, each once, with a reason
    items = quarantine(target / "crmsync.toml")
    refs = sorted(i["ref"] for i in items)
    assert len(items) == 3, refs
    assert any("zz-bomb" in r for r in refs) and any("zz-garbage" in r for r in refs) and any("reviews.csv" in r for r in refs), refs
    assert all(i["reason"] for i in items)
    again = report(run(target / "crmsync.toml", "--json"))
    assert again["sinks"][0]["delivered"] == 0 and sum(s["new"] for s in again["sources"]) == 0


def test_twenty_kills_then_exactly_once(corpus):
    """4 datasets (10 with CRMSYNC_TORTURE=long) killed 5 times each as they progress."""
    datasets = 10 if LONG else 4
    _add_bad_inputs(corpus)
    copies = []
    for n in range(datasets + 1):
        target = corpus.parent / f"d{n}"
        shutil.copytree(corpus, target)
        copies.append(target)
    server, urls = serve_feeds(corpus)  # every copy has the same feeds: one server
    kills, attempts = 0, 0
    try:
        ref_cfg = _prepare(copies[0], urls)
        t0 = time.monotonic()
        ref = run(ref_cfg, "--json")
        duration = time.monotonic() - t0
        assert ref.returncode == 1, ref.stderr[-2000:]  # 1: the bad inputs were quarantined

        def torture(n: int, target: Path) -> int:
            rnd = random.Random(20261201 + n)
            cfg = _prepare(target, urls)
            killed = 0
            for k in range(5):
                if rnd.random() < 0.5:
                    # a named point, early enough that the work left still reaches it
                    point = f"{rnd.choice(POINTS)}:{rnd.randint(1, 3)}"
                    res = run(cfg, env={"CRMSYNC_FAILPOINTS": point})
                    assert res.returncode in (-signal.SIGKILL, 0, 1), res.stderr[-2000:]
                    killed += res.returncode == -signal.SIGKILL
                else:
                    # a random moment: start-up, fetch, parse, enrichment, store, sink
                    proc = subprocess.Popen([*crmsync_cmd(), "-c", str(cfg), "run", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(rnd.uniform(0.3, duration * (1 - k / 6)))
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                        killed += 1
                    proc.wait(timeout=60)
            final = run(cfg, "--json")
            assert final.returncode in (0, 1), final.stderr[-2000:]  # 1 if it is the run that met the bad inputs
            assert all(s["status"] == "ok" for s in report(final)["sinks"])
            _check_quarantine_and_rerun(target)
            return killed

        # two datasets at a time: one per core
        with ThreadPoolExecutor(max_workers=2) as pool:
            kills = sum(pool.map(torture, range(1, len(copies)), copies[1:]))
        attempts = 5 * datasets
    finally:
        server.close()
    assert kills >= attempts * 0.6, f"only {kills} of {attempts} runs were killed: the points were not reached"
    truth = truth_keys(corpus)
    # a cross-posted item (one guid in two feeds, with different metadata) keeps the copy
    # fetched last, and concurrent fetching orders feeds differently in every run: those
    # are checked for exactly-once, not field by field
    crossposted = {p["key"] for p in json.loads((corpus / "crm" / "truth.json").read_text())["duplicate_pairs"]}
    reference = _held(copies[0] / "out", truth)
    for target in copies:
        held = _held(target / "out", truth)
        # CRM contacts are linked the same way (author_crm_id is compared below); how unknown
        # authors cluster into one identity still depends on the order records arrive in
        # (a record that bridges two clusters does not merge them), so it is not compared
        assert len(_authors(held)) >= len(_authors(reference)) * 0.95
        strip = lambda r: {c: v for c, v in r.items() if c != "_author"}  # noqa: E731
        diffs = [k for k in reference if reference[k]["native_id"] not in crossposted and strip(held.get(k, {})) != strip(reference[k])]
        fields = sorted({c for k in diffs for c in reference[k] if held.get(k, {}).get(c) != reference[k][c]})
        example = {c: (reference[diffs[0]][c], held.get(diffs[0], {}).get(c)) for c in fields} if diffs else {}
        assert not diffs, f"{target.name}: {len(diffs)} records differ from the uninterrupted run in {fields}, e.g. {example}"
    print(f"torture crash: {kills} kills in {attempts} runs over {datasets} datasets; {len(reference)} interactions exactly once each")
