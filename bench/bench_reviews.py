#!/usr/bin/env python3
"""Benchmark of the reviews plugin beside a bare ``csv`` read of the same file, in one run.

Builds a 100k-review export by cycling the shared corpus's ``reviews.csv``
rows under new review ids, then measures `crmsync run` with one reviews
source (parse, normalize ratings and dates, store into SQLite) against
``csv.DictReader`` over the same file.

    python bench/bench_reviews.py --reviews 100000
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviews", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-reviews-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(work / "c"), "--interactions", "20000", "--seed", "1"], check=True, capture_output=True)
        with open(work / "c" / "reviews" / "reviews.csv", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header, rows = reader.fieldnames, list(reader)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        w.writeheader()
        for n in range(args.reviews):
            row = dict(rows[n % len(rows)])
            row["review_id"] = f"RV-{n:08d}"
            w.writerow(row)
        export = work / "reviews.csv"
        export.write_text(buf.getvalue(), encoding="utf-8")
        t0 = time.perf_counter()
        with open(export, encoding="utf-8", newline="") as fh:
            bare_rows = sum(1 for _ in csv.DictReader(fh))
        bare_s = time.perf_counter() - t0
        cfg = work / "r.toml"
        cfg.write_text(f'[store]\npath = "r.db"\n\n[sources.reviews]\nplugin = "reviews"\nfiles = ["{export}"]\nplatform = "shop"\n')
        exe = Path(sys.executable).parent / "crmsync"
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(exe), "-c", str(cfg), "run", "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, _status, usage = os.wait4(proc.pid, 0)
        secs = time.perf_counter() - t0
        report = json.loads(proc.stdout.read())
    read = report["sources"][0]["read"]
    result = {
        "reviews": args.reviews,
        "stored": report["sources"][0]["new"],
        "plugin_seconds": round(secs, 3),
        "plugin_reviews_per_s": round(read / secs, 1),
        "plugin_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "bare_csv_rows_per_s": round(bare_rows / bare_s, 1),
        "ratio_plugin_to_bare_csv": round((read / secs) / (bare_rows / bare_s), 4),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"reviews-{args.reviews}.json").write_text(json.dumps(result, indent=2))
    md = [f"# reviews plugin, {args.reviews} reviews (CSV)", "", "| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    (args.out / f"reviews-{args.reviews}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
