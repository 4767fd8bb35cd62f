#!/usr/bin/env python3
"""Delivery into the CRMs: records/s and requests per 100 records for each API sink.

Generates the shared corpus (../shared/bench/make_corpus.py) into a temporary
directory, reads it into a store once (all sources, identity, enrichers; no
sink), then delivers the whole backlog to one sink at a time, in the same
run of this script so the figures compare:

* ``crm_csv`` (import files: the anchor the API sinks are measured against),
* ``hubspot`` against the local HubSpot API (tests/fakes/hubspot.py, its rate
  limit lifted so the sink, not the limiter, is timed),
* ``salesforce`` against the local Salesforce API over TLS (tests/fakes/salesforce.py),
  through sObject Collections and, separately, Bulk API 2.0,
* ``tryton`` into a real trytond (SQLite) started for the run.

Each figure is the sink's own duration from the run report; requests per 100
records come from the sink's report line. Ratios are against crm_csv.

    python bench/bench_crm_sinks.py --interactions 10000 [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.corpus_config import CORPUS_TOOL, corpus_config  # noqa: E402
from tests.fakes.hubspot import FakeHubSpot  # noqa: E402
from tests.fakes.salesforce import FakeSalesforce  # noqa: E402

TOKEN = "pat-bench"


def crmsync(cfg: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    exe = Path(sys.executable).parent / "crmsync"
    res = subprocess.run([str(exe), "-c", str(cfg), "run", "--json", "--no-progress", *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if os.environ.get("BENCH_STDERR"):
        print(res.stderr[-2000:], file=sys.stderr)
    if res.returncode not in (0, 1):
        raise SystemExit(f"crmsync run failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--sinks", default="crm_csv,hubspot,hubspot_unknown,salesforce,salesforce_bulk,tryton,tryton_unknown", help="Which to run (crm_csv, the anchor, always runs).")
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        raise SystemExit(f"corpus generator not found at {CORPUS_TOOL} (it lives in ../shared/bench)")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-sinks-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(work), "--interactions", str(args.interactions), "--seed", str(args.seed)], check=True, capture_output=True)
        base = corpus_config(work, sink=False)
        cfg = work / "crmsync.toml"
        cfg.write_text(base)
        t0 = time.perf_counter()
        read = crmsync(cfg)
        stored = sum(s["new"] for s in read["sources"])
        print(f"stored {stored} interactions in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        env = {"BENCH_HUBSPOT_TOKEN": TOKEN}
        with FakeHubSpot(TOKEN, max_requests=10**9, search_per_second=10**9) as hs, FakeSalesforce(work, "00Dbench!session") as sf:
            hs.properties["notes"]["crmsync_interaction_id"] = {"type": "string"}
            env["BENCH_SF_SESSION"] = sf.session_id
            sinks = {
                "crm_csv": '[sinks.crm_csv]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"\n',
                "hubspot": f'[sinks.hubspot]\nplugin = "hubspot"\naccess_token = "env:BENCH_HUBSPOT_TOKEN"\nbase_url = "{hs.url}"\n',
                "hubspot_unknown": f'[sinks.hubspot_unknown]\nplugin = "hubspot"\naccess_token = "env:BENCH_HUBSPOT_TOKEN"\nbase_url = "{hs.url}"\nsearch_before_create = "unknown"\n',
                "salesforce": f'[sinks.salesforce]\nplugin = "salesforce"\ninstance_url = "{sf.instance_url}"\nsession_id = "env:BENCH_SF_SESSION"\nca_file = "{sf.ca_file}"\n',
                "salesforce_bulk": f'[sinks.salesforce_bulk]\nplugin = "salesforce"\ninstance_url = "{sf.instance_url}"\nsession_id = "env:BENCH_SF_SESSION"\nca_file = "{sf.ca_file}"\nbatch_size = 10000\nbulk_threshold = 2000\nbulk_poll = 0.2\ntask_external_id = "Crmsync_Id__c"\n',
            }
            server = None
            wanted = {"crm_csv", *args.sinks.split(",")}
            if "tryton" in wanted:
                from crmsync_tryton.devserver import TrytonServer

                server = TrytonServer(work / "tryton").start()
                first_tryton_url = server.url
                env["BENCH_TRYTON_PASSWORD"] = server.password
                sinks["tryton"] = f'[sinks.tryton]\nplugin = "tryton"\nurl = "{server.url}"\ndatabase = "{server.database}"\npassword = "env:BENCH_TRYTON_PASSWORD"\nunmatched_party = "Unmatched authors"\n'
                sinks["tryton_unknown"] = sinks["tryton"].replace("[sinks.tryton]", "[sinks.tryton_unknown]") + 'search_before_create = "unknown"\n'
            try:
                for name, table in sinks.items():
                    if name not in wanted:
                        continue
                    if name == "salesforce_bulk":
                        sf.records["Task"].clear()  # a fresh org for the bulk path
                        sf.records["Lead"].clear()
                    if name == "hubspot_unknown":
                        hs.notes.clear()  # a fresh portal: the same creates again
                        hs.contacts.clear()
                        hs.associations.clear()
                    if name == "tryton_unknown" and server is not None:
                        server.stop()  # a fresh Tryton: the same parties and notes to create again
                        server = TrytonServer(work / "tryton2").start()
                        table = table.replace(f'url = "{first_tryton_url}"', f'url = "{server.url}"')
                    cfg.write_text(base + "\n" + table)
                    t0 = time.perf_counter()
                    rep = crmsync(cfg, "--sink", name, env=env)
                    wall = time.perf_counter() - t0
                    s = rep["sinks"][0]
                    per100 = next((float(m.group(1)) for n in s["notes"] if (m := re.search(r"\(([\d.]+) per 100\)", n))), None)
                    results[name] = {"delivered": s["delivered"], "rejected": s["rejected"], "sink_s": s["duration"], "run_s": round(wall, 2),
                                     "records_per_s": round(s["delivered"] / s["duration"], 1) if s["duration"] else None, "requests_per_100": per100, "status": s["status"]}
                    print(name, results[name], file=sys.stderr)
            finally:
                if server is not None:
                    server.stop()
            if "hubspot" in results:
                results["hubspot"]["server_requests"] = dict(hs.requests)
    anchor = results["crm_csv"]["sink_s"]
    for r in results.values():
        r["time_vs_crm_csv"] = round(r["sink_s"] / anchor, 2) if anchor else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"crm-sinks-{args.interactions}.json").write_text(json.dumps({"stored": stored, "sinks": results}, indent=2))
    md = [f"# Delivery into the CRMs, {stored} interactions (seed {args.seed})", "", "| sink | delivered | sink s | records/s | requests per 100 | time vs crm_csv |", "|---|---:|---:|---:|---:|---:|"]
    md += [f"| {n} | {r['delivered']} | {r['sink_s']} | {r['records_per_s']} | {r['requests_per_100'] if r['requests_per_100'] is not None else '-'} | {r['time_vs_crm_csv']}x |" for n, r in results.items()]
    (args.out / f"crm-sinks-{args.interactions}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
