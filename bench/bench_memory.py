#!/usr/bin/env python3
"""Where a run's memory goes: every process of `crmsync run`, sampled while it runs.

Generates the shared corpus (or takes one already made), runs `crmsync run --json`
over it with every source as local files (tests/corpus_config.py), and samples
``/proc/<pid>/smaps_rollup`` of the run and each of its forked workers every
``--every`` seconds: the tree's summed PSS (what the machine pays; shared pages
counted once) and each process's peak RSS, with when it was born and peaked.

    .venv/bin/python bench/bench_memory.py --interactions 100000
    .venv/bin/python bench/bench_memory.py --interactions 1000000    # ~10 min, 3.5 GB of corpus
    .venv/bin/python bench/bench_memory.py --corpus /path/to/made/corpus

Processes are listed in the order they were born: the run, the CRM contacts' worker,
then one worker per source (two at a time on two cores, in the config's order: feeds,
mbox, maildir, shop_reviews, platform_reviews, review_pages), then the sink's workers
(forked from one of the run's threads).
Linux only (``/proc``). Writes bench/results/bench-memory-<n>.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``: the children of each of its threads (the sink's
    workers are forked from a thread of the run, not from its main thread)."""
    out: list[int] = []
    kids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    for c in kids:
        out += [c, *children(c)]
    return out


def rollup(pid: int) -> dict[str, int] | None:
    """RSS and PSS of one process in MB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            got = {}
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    got[key] = int(value.split()[0]) // 1024
            return got if len(got) == 2 else None
    except OSError:
        return None


def measure(corpus: Path, every: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.corpus_config import corpus_config

    (corpus / "crmsync.toml").write_text(corpus_config(corpus))
    for leftover in ("state", "out"):
        shutil.rmtree(corpus / leftover, ignore_errors=True)
    exe = Path(sys.executable).parent / "crmsync"
    t0 = time.monotonic()
    proc = subprocess.Popen([str(exe), "-c", str(corpus / "crmsync.toml"), "run", "--no-progress", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    born: dict[int, float] = {}
    peak: dict[int, tuple[int, float]] = {}
    tree_peak, timeline = 0, []
    while proc.poll() is None:
        now = round(time.monotonic() - t0, 1)
        total = 0
        for pid in [proc.pid, *children(proc.pid)]:
            m = rollup(pid)
            if m is None:
                continue
            total += m["Pss"]
            born.setdefault(pid, now)
            if m["Rss"] > peak.get(pid, (0, 0.0))[0]:
                peak[pid] = (m["Rss"], now)
        tree_peak = max(tree_peak, total)
        timeline.append((now, total))
        time.sleep(every)
    wall = time.monotonic() - t0
    stdout = proc.stdout.read() if proc.stdout else b""
    if proc.returncode != 0:
        raise SystemExit(f"crmsync run exited {proc.returncode}")
    report = json.loads(stdout)
    new = sum(s.get("new", 0) for s in report["sources"])
    return {
        "seconds": round(wall, 1),
        "interactions": new,
        "per_s": round(new / wall, 1),
        "peak_tree_pss_mb": tree_peak,
        "processes": [{"pid": pid, "run": pid == proc.pid, "born_s": born[pid], "peak_rss_mb": peak[pid][0], "peak_at_s": peak[pid][1]} for pid in sorted(peak, key=lambda p: born[p])],
        "timeline": timeline[:: max(1, len(timeline) // 40)],
        "durations": {s["name"]: s["duration"] for s in report["sources"] + report["sinks"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", type=Path, help="a corpus make_corpus.py already made (its state/ and out/ are removed first)")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if not Path("/proc/self/smaps_rollup").exists():
        raise SystemExit("bench_memory.py reads /proc/<pid>/smaps_rollup: Linux 4.14 or later")
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-memory-") as tmp:
        corpus = args.corpus
        if corpus is None:
            if not CORPUS_TOOL.exists():
                raise SystemExit(f"corpus generator not found at {CORPUS_TOOL} (it lives in ../shared/bench); or pass --corpus")
            corpus = Path(tmp) / "corpus"
            print(f"corpus of {args.interactions:,} interactions ...", flush=True)
            subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(corpus), "--interactions", str(args.interactions), "--seed", str(args.seed)], check=True, capture_output=True)
        print("crmsync run ...", flush=True)
        res = measure(corpus, args.every)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench-memory-{res['interactions']}.json").write_text(json.dumps(res, indent=2))
    print(f"{res['interactions']:,} interactions in {res['seconds']} s ({res['per_s']}/s); peak PSS of the process tree {res['peak_tree_pss_mb']} MB")
    print("| process | born (s) | peak RSS (MB) | at (s) |")
    print("|---|---:|---:|---:|")
    for p in res["processes"]:
        print(f"| {'the run' if p['run'] else 'worker'} {p['pid']} | {p['born_s']} | {p['peak_rss_mb']} | {p['peak_at_s']} |")
    print("durations (s): " + ", ".join(f"{k} {v}" for k, v in res["durations"].items()))


if __name__ == "__main__":
    main()
