#!/usr/bin/env python3
"""Benchmark of the email plugin beside the bare standard-library parse, in one run.

1. The whole plugin: `crmsync run` with one email source reading the corpus
   mbox (parse, decode, reply separation, normalize, store into SQLite).
2. The bare parse of the same mbox, single process, nothing else:
   ``email.message_from_bytes`` with ``policy.default`` and with ``compat32``.

    python bench/bench_email.py --interactions 100000

Writes bench/results/email-N.{json,md}.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import mailbox
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
    ap.add_argument("--interactions", type=int, default=100_000, help="corpus size (mail is about 30%%)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-mail-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(work / "c"), "--interactions", str(args.interactions), "--seed", "1"], check=True, capture_output=True)
        mbox = work / "c" / "mail" / "archive.mbox"
        box = mailbox.mbox(mbox)
        raws = [box.get_bytes(k) for k in box.keys()]
        bare = {}
        for name, policy in (("policy.default", email.policy.default), ("compat32", email.policy.compat32)):
            t0 = time.perf_counter()
            for raw in raws:
                msg = email.message_from_bytes(raw, policy=policy)
                msg.get("From")
                msg.get("Subject")
            secs = time.perf_counter() - t0
            bare[name] = {"messages": len(raws), "seconds": round(secs, 3), "messages_per_s": round(len(raws) / secs, 1)}
        cfg = work / "mail.toml"
        cfg.write_text(f'[store]\npath = "mail.db"\n\n[sources.mail]\nplugin = "email"\npaths = ["{mbox}"]\n')
        exe = Path(sys.executable).parent / "crmsync"
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(exe), "-c", str(cfg), "run", "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        secs = time.perf_counter() - t0
        report = json.loads(proc.stdout.read())
    read = report["sources"][0]["read"]
    rate = read / secs
    result = {
        "messages": len(raws),
        "plugin_seconds": round(secs, 3),
        "plugin_messages_per_s": round(rate, 1),
        "plugin_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "bare": bare,
        "ratio_plugin_to_policy_default": round(rate / bare["policy.default"]["messages_per_s"], 2),
        "ratio_plugin_to_compat32": round(rate / bare["compat32"]["messages_per_s"], 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"email-{args.interactions}.json").write_text(json.dumps(result, indent=2))
    md = [f"# email plugin, {len(raws)} messages (mbox)", "", "| measure | value |", "|---|---|"]
    md += [f"| whole plugin (parse + decode + replies + normalize + store) | {result['plugin_messages_per_s']} messages/s ({result['plugin_seconds']} s, peak RSS {result['plugin_peak_rss_mb']} MB) |"]
    md += [f"| bare parse, {k} | {v['messages_per_s']} messages/s |" for k, v in bare.items()]
    md += [f"| ratio plugin / bare policy.default | {result['ratio_plugin_to_policy_default']} |", f"| ratio plugin / bare compat32 | {result['ratio_plugin_to_compat32']} |"]
    (args.out / f"email-{args.interactions}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
