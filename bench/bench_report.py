#!/usr/bin/env python3
"""`crmsync report` on a large store: generation time and file size.

The shared corpus (../shared/bench/make_corpus.py) is generated and read by
`crmsync run` (every source, the enrichers, no sink) into a SQLite store; then
`crmsync report` runs against it, timed (wall clock, best of ``--repeat``), and the
HTML's size is taken. For scale: the same store's `crmsync status --json`, the other
command that reads it whole.

    python bench/bench_report.py --interactions 100000

Writes bench/results/report-N.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.corpus_config import CORPUS_TOOL, corpus_config  # noqa: E402


def crmsync(cfg: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    exe = Path(sys.executable).parent / "crmsync"
    t0 = time.perf_counter()
    res = subprocess.run([str(exe), "-c", str(cfg), *args], capture_output=True, text=True)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        sys.exit(f"{CORPUS_TOOL} is not beside the project")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "c"
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(corpus), "--interactions", str(args.interactions), "--seed", "3", "-q"], check=True)
        cfg = corpus / "crmsync.toml"
        cfg.write_text(corpus_config(corpus, sink=False))
        run_s, res = crmsync(cfg, "run", "--no-progress", "--json")
        stored = sum(s["new"] for s in json.loads(res.stdout)["sources"])
        out = corpus / "report.html"
        report_s = min(crmsync(cfg, "report", "--out", str(out))[0] for _ in range(args.repeat))
        status_s = min(crmsync(cfg, "status", "--json")[0] for _ in range(args.repeat))
        result = {
            "interactions_stored": stored,
            "run_seconds": round(run_s, 1),
            "report_seconds": round(report_s, 2),
            "status_seconds": round(status_s, 2),
            "report_bytes": out.stat().st_size,
            "ratio_report_to_status": round(report_s / status_s, 2),
        }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"report-{args.interactions}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        f"# crmsync report at {stored} interactions\n\n| | |\n|---|---|\n"
        f"| report, wall clock (best of {args.repeat}) | {result['report_seconds']} s |\n"
        f"| `crmsync status --json`, same store | {result['status_seconds']} s ({result['ratio_report_to_status']}x) |\n"
        f"| report size | {result['report_bytes'] // 1024} KiB |\n"
    )
    (out_dir / f"report-{args.interactions}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
