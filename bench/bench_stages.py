#!/usr/bin/env python3
"""Per-stage cost of a run: CPU µs per interaction for each stage of the data path,
next to the lean floor of that stage measured in the same run.

Each stage is driven through its own interface (crmsync.pipeline, crmsync.store), in
one process, over the shared benchmark corpus (feeds served over loopback HTTP):

| stage | crmsync | floor |
|---|---|---|
| start-up | ``crmsync --version`` and the imports of a run, in a fresh interpreter | ``python -c pass`` |
| fetch | the rss source's Fetcher (conditional GET, limits, decompression) | urllib3 GETs of the same URLs |
| parse | ``crmsync_rss.parse.parse_feed``, ``crmsync_email.parse.parse_message`` | ElementTree, the compat32 email policy |
| read (parse + normalize) | each source's ``read()`` over local files | |
| validation | ``Interaction.model_validate`` of each record's fields | a dict copy |
| identity | ``Resolution.resolve`` over the CRM contacts | a dict lookup by email |
| each enricher | ``enrich_batch`` | VADER / fastText / a regex alone |
| store write | ``store.interactions.write_batch`` | sqlite3 ``executemany`` of the same JSON rows |
| sink write | the crm_csv sink's ``write`` and ``flush`` | ``csv.writer`` of the same fields |
| ledger | ``store.ledger.record`` | sqlite3 ``executemany`` of (sink, id, version) |

    .venv/bin/python bench/bench_stages.py                 # 10k and 100k
    .venv/bin/python bench/bench_stages.py --sizes 10000

Writes bench/results/bench-stages.{json,md} (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.corpus_config import CORPUS_TOOL, corpus_config  # noqa: E402
from tests.feedserver import FeedServer  # noqa: E402

BATCH = 500


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this process spent in ``fn()`` (threads included), and its result."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def child_cpu(cmd: list[str], cwd: Path | None = None) -> float:
    """CPU seconds (user + system) of a child process."""
    before = os.times()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def batches(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_size(n: int, seed: int, work: Path) -> dict[str, Any]:
    import crmsync
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.pipeline.enrich import make_enrichers
    from crmsync.pipeline.report import SourceReport
    from crmsync.pipeline.resolve import Resolution, Settings
    from crmsync.store import Store

    corpus = work / "corpus"
    print(f"[{n}] corpus ...", flush=True)
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(corpus), "--interactions", str(n), "--seed", str(seed)], check=True, capture_output=True)
    (corpus / "crmsync.toml").write_text(corpus_config(corpus))
    host = get_host()
    cfg = load_config(corpus / "crmsync.toml", host)
    ctx = crmsync.Context(config_dir=corpus, run_id="bench")
    rows: list[dict[str, Any]] = []

    def row(stage: str, seconds: float, count: int, floor: float | None = None, floor_what: str = "", note: str = "") -> None:
        us = seconds / count * 1e6 if count else 0.0
        f_us = floor / count * 1e6 if (floor is not None and count) else None
        rows.append({"stage": stage, "us_per_interaction": round(us, 1), "floor_us": round(f_us, 1) if f_us is not None else None,
                     "ratio": round(us / f_us, 1) if f_us else None, "floor": floor_what, "count": count, "note": note})
        print(f"  {stage:<28} {us:9.1f} µs" + (f"   floor {f_us:8.1f} µs ({us / f_us:.1f}x)" if f_us else ""), flush=True)

    # read every source (local files) ---------------------------------------
    print(f"[{n}] stages ...", flush=True)
    records: dict[str, list[crmsync.Interaction]] = {}
    contacts: list[crmsync.Identity] = []
    for name, inst in cfg.sources.items():
        src = host.get("sources", inst.plugin)(name, cfg.resolved_options(inst), ctx)
        secs, items = cpu(lambda src=src: list(src.read(None)))
        recs = [i for i in items if isinstance(i, crmsync.Interaction)]
        contacts += [i for i in items if isinstance(i, crmsync.Identity)]
        records[name] = recs
        row(f"read: {name}", secs, len(recs) or len(items), note="parse + normalize, local files")
    everything = [r for recs in records.values() for r in recs]
    total = len(everything)

    # fetch ---------------------------------------------------------------------
    feeds = sorted((corpus / "feeds").iterdir())
    server = FeedServer({f"/feeds/{f.name}": f.read_bytes() for f in feeds})
    try:
        urls = [server.url(f"/feeds/{f.name}") for f in feeds]
        fetcher = crmsync.Fetcher()
        secs, _ = cpu(lambda: [fetcher.fetch(u) for u in urls])
        import urllib3

        pool = urllib3.PoolManager()
        floor, _ = cpu(lambda: [pool.request("GET", u).data for u in urls])
    finally:
        server.close()
    row("fetch (feeds)", secs, len(records["feeds"]), floor, "urllib3 GET")

    # parse -----------------------------------------------------------------------
    import email
    import email.policy
    import mailbox
    import xml.etree.ElementTree as ET  # noqa: N817,S405 - the trusted generated corpus, the floor

    from crmsync_email.parse import parse_message
    from crmsync_rss.parse import parse_feed

    blobs = [f.read_bytes() for f in feeds]
    secs, _ = cpu(lambda: [parse_feed(b) for b in blobs])

    def et_floor() -> None:
        for b in blobs:
            if b.lstrip().startswith(b"{"):
                json.loads(b)
                continue
            for el in ET.fromstring(b).iter():  # noqa: S314
                {c.tag: c.text for c in el}  # noqa: B018
    floor, _ = cpu(et_floor)
    row("parse: feeds", secs, len(records["feeds"]), floor, "ElementTree / json")
    raw_mail = [m.as_bytes() for m in mailbox.mbox(corpus / "mail" / "archive.mbox")]
    secs, _ = cpu(lambda: [parse_message(r) for r in raw_mail])
    floor, _ = cpu(lambda: [email.message_from_bytes(r, policy=email.policy.compat32).get_payload() for r in raw_mail])
    row("parse: mail", secs, len(raw_mail), floor, "compat32")

    # validation --------------------------------------------------------------------
    dumped = [r.model_dump() for r in everything]
    secs, _ = cpu(lambda: [crmsync.Interaction.model_validate(d) for d in dumped])
    floor, _ = cpu(lambda: [dict(d) for d in dumped])
    row("validation (pydantic)", secs, total, floor, "dict copy")

    store = Store(f"sqlite:///{work / 'stages.db'}")
    try:
        store.interactions.write_batch("crm", [], identities_=contacts)
        # identity ----------------------------------------------------------------------
        res = Resolution(store.identities, store.interactions, Settings(cfg.identity_enabled, cfg.auto_link_threshold, cfg.fuzzy_threshold, cfg.influence, cfg.batch_size), lambda: [])
        counts: dict[str, int] = {}
        res.prepare(counts, build_now=True)
        rep = SourceReport("bench", "bench")
        non_crm = [r for name, recs in records.items() if name != "crm" for r in recs]
        secs, resolved = cpu(lambda: [x for b in batches(non_crm) for x in res.resolve(b, rep, counts)])
        by_email = {e.lower(): c for c in contacts for e in c.emails}
        floor, _ = cpu(lambda: [by_email.get((r.author.emails[0] if r.author and r.author.emails else "").lower()) for r in non_crm])
        row("identity", secs, len(non_crm), floor, "dict lookup by email", note=f"{counts.get('linked', 0)} linked")

        # enrichers ---------------------------------------------------------------------
        inst = next(iter(cfg.sources.values()))
        enriched = resolved
        floors = _enricher_floors([r.body_text or r.title or "" for r in resolved])
        for enricher in make_enrichers(cfg, host, inst, ctx):
            secs, enriched = cpu(lambda e=enricher, recs=enriched: [x for b in batches(recs) for x in e.enrich_batch(b)])
            fl = floors.get(enricher.name)
            row(f"enrich: {enricher.instance}", secs, len(enriched), fl[0] if fl else None, fl[1] if fl else "")

        # store write -------------------------------------------------------------------
        secs, _ = cpu(lambda: [store.interactions.write_batch(b[0].source, b) for b in batches(enriched)])
        floor = _sqlite_floor(work / "floor.db", [(r.interaction_id, r.model_dump_json()) for r in enriched])
        row("store write", secs, len(enriched), floor, "sqlite3 executemany (id, json)")

        # sink write --------------------------------------------------------------------
        sink_inst = cfg.sinks["crm_files"]
        sink = host.get("sinks", sink_inst.plugin)("crm_files", cfg.resolved_options(sink_inst), ctx)
        deliveries = [crmsync.Delivery(r, 1, "create", None, r.author) for r in enriched]

        def write_all() -> list[Any]:
            sink.open()
            got: list[Any] = []
            for b in batches(deliveries):
                got += list(sink.write(b) or [])
            got += list(sink.flush() or [])
            sink.close()
            return got

        secs, receipts = cpu(write_all)
        floor = _csv_floor(work / "floor.csv", enriched)
        row("sink write (crm_csv)", secs, len(deliveries), floor, "csv.writer")

        # ledger ------------------------------------------------------------------------
        secs, _ = cpu(lambda: [store.ledger.record("crm_files", b, "bench") for b in batches(receipts, 2000)])
        floor = _ledger_floor(work / "ledger.db", [(r.interaction_id, r.version) for r in receipts])
        row("ledger", secs, len(receipts), floor, "sqlite3 executemany (sink, id, version)")
    finally:
        store.dispose()

    # start-up ---------------------------------------------------------------------------
    exe = Path(sys.executable).parent / "crmsync"
    start = sum(child_cpu([str(exe), "--version"]) for _ in range(3)) / 3
    imports = sum(child_cpu([sys.executable, "-c", "import crmsync.cli, crmsync.pipeline.run, crmsync.store; from crmsync.host.plugins import get_host; get_host().collect()"]) for _ in range(3)) / 3
    bare = sum(child_cpu([sys.executable, "-c", "pass"]) for _ in range(3)) / 3
    row("start-up: crmsync --version", start * total / total, 1, bare, "python -c pass", note="ms per process, not per interaction")
    rows[-1]["us_per_interaction"], rows[-1]["floor_us"] = round(start * 1e3, 1), round(bare * 1e3, 1)
    row("start-up: a run's imports", imports, 1, bare, "python -c pass", note="ms per process, not per interaction")
    rows[-1]["us_per_interaction"], rows[-1]["floor_us"] = round(imports * 1e3, 1), round(bare * 1e3, 1)
    return {"interactions": total, "rows": rows}


def _enricher_floors(texts: list[str]) -> dict[str, tuple[float, str]]:
    """The enrichers' models alone over the same texts: (CPU seconds, what)."""
    out: dict[str, tuple[float, str]] = {}
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    out["sentiment"] = (cpu(lambda: [vader.polarity_scores(t) for t in texts])[0], "VADER polarity_scores alone")
    from crmsync_enrich.enrichers import _language_model  # the same bundled fastText model

    model = _language_model()
    out["language"] = (cpu(lambda: [model.predict(t[:400].replace("\n", " ")) for t in texts])[0], "fastText predict alone")
    import re

    pat = re.compile(r"\b(Acme Rocket|Acme Anvil|Acme Giant Magnet|Acme)\b", re.I)
    out["mentions"] = (cpu(lambda: [pat.findall(t) for t in texts])[0], "one regex alone")
    return out


def _sqlite_floor(path: Path, rows: list[tuple[Any, ...]], ddl: str = "CREATE TABLE t (id TEXT PRIMARY KEY, record TEXT)",
                  insert: str = "INSERT OR REPLACE INTO t VALUES (?, ?)", size: int = BATCH) -> float:
    """sqlite3 alone, with the store's pragmas: ``rows`` in batches, a transaction each."""
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(ddl)

    def go() -> None:
        for b in batches(rows, size):
            con.execute("BEGIN IMMEDIATE")
            con.executemany(insert, b)
            con.execute("COMMIT")
    secs, _ = cpu(go)
    con.close()
    return secs


def _ledger_floor(path: Path, rows: list[tuple[str, int]]) -> float:
    return _sqlite_floor(path, rows, "CREATE TABLE d (sink TEXT, id TEXT, version INT, PRIMARY KEY (sink, id))",
                         "INSERT OR REPLACE INTO d VALUES ('crm_files', ?, ?)", size=2000)


def _csv_floor(path: Path, recs: list[Any]) -> float:
    import csv

    def go() -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            for r in recs:
                w.writerow([r.interaction_id, r.source, r.kind, r.url, r.title, r.body_text, r.author.name if r.author else "", r.published])
    return cpu(go)[0]


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# crmsync per-stage cost ({res['machine']})", "", f"{res['date']}; CPU µs per interaction (start-up: ms per process).", ""]
    for size in res["sizes"]:
        lines += [f"## {size['interactions']:,} interactions", "", "| stage | crmsync µs | floor µs | ratio | floor | note |", "|---|---:|---:|---:|---|---|"]
        for r in size["rows"]:
            floor = "" if r["floor_us"] is None else r["floor_us"]
            ratio = "" if r["ratio"] is None else f"{r['ratio']}x"
            lines.append(f"| {r['stage']} | {r['us_per_interaction']} | {floor} | {ratio} | {r['floor']} | {r['note']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        raise SystemExit(f"corpus generator not found at {CORPUS_TOOL} (it lives in ../shared/bench)")
    res: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sizes": []}
    for n in sorted(args.sizes):
        with tempfile.TemporaryDirectory(prefix="crmsync-bench-stages-") as tmp:
            res["sizes"].append(bench_size(n, args.seed, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-stages.json").write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (args.out / "bench-stages.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
