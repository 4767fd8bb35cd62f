#!/usr/bin/env python3
"""End-to-end benchmark of `crmsync run` on the shared corpus.

Generates a corpus with ../shared/bench/make_corpus.py into a temporary
directory, runs `crmsync run` (rss + email + reviews + crm_csv sources into
the SQLite store and the crm_csv sink), then an immediate second run, and
reports interactions/s, peak RSS (from the OS, wait4) and the second run's
time as JSON and markdown.

    python bench/bench_run.py --interactions 10000 [--out bench/results]

The anchors of issue 9 (Singer, dlt, feedparser pipeline, parse floor) are
added to this report by that issue.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"

CONFIG = """
[store]
path = "state/crmsync.db"

[sources.feeds]
plugin = "rss"
feeds = ["feeds/"]

[sources.mbox]
plugin = "email"
paths = ["mail/archive.mbox"]

[sources.maildir]
plugin = "email"
paths = ["mail/Maildir"]

[sources.reviews_csv]
plugin = "reviews"
files = ["reviews/reviews.csv"]
platform = "shop"
mapping = { product_id = "product" }

[sources.contacts]
plugin = "crm_csv"
file = "crm/contacts.csv"

[sinks.crm]
plugin = "crm_csv"
output_dir = "out"
"""


def timed_run(cmd: list[str], cwd: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"crmsync run failed ({code}):\n{err}")
    return {"seconds": round(elapsed, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "exit_code": code, "report": json.loads(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        raise SystemExit(f"corpus generator not found at {CORPUS_TOOL} (it lives in ../shared/bench)")
    exe = Path(sys.executable).parent / "crmsync"
    cmd = [str(exe) if exe.exists() else "crmsync", "-c", "crmsync.toml", "run", "--json", "--no-progress"]
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(work), "--interactions", str(args.interactions), "--seed", str(args.seed)], check=True, capture_output=True)
        (work / "crmsync.toml").write_text(CONFIG)
        first = timed_run(cmd, work)
        second = timed_run(cmd, work)
        shutil.rmtree(work / "state", ignore_errors=True)
    rep = first["report"]
    stored = sum(s["new"] for s in rep["sources"])
    result = {
        "interactions_requested": args.interactions,
        "interactions_stored": stored,
        "quarantined": sum(s["quarantined"] for s in rep["sources"]),
        "delivered": sum(s["delivered"] for s in rep["sinks"]),
        "first_run_s": first["seconds"],
        "interactions_per_s": round(stored / first["seconds"], 1),
        "peak_rss_mb": first["peak_rss_mb"],
        "second_run_s": second["seconds"],
        "second_run_delivered": sum(s["delivered"] for s in second["report"]["sinks"]),
        "per_source": {s["name"]: {"read": s["read"], "new": s["new"], "s": s["duration"]} for s in rep["sources"]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"run-{args.interactions}.json").write_text(json.dumps(result, indent=2))
    md = [
        f"# crmsync run, {args.interactions} interactions (seed {args.seed})",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in result.items() if k != "per_source"),
    ]
    (args.out / f"run-{args.interactions}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
