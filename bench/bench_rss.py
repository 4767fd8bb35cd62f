#!/usr/bin/env python3
"""Benchmark of the rss plugin against the bare parsers, in one run.

1. The whole plugin: `crmsync run` with one rss source fetching every feed
   of the shared corpus over a loopback HTTP server, parsing, normalizing and
   storing into SQLite (no sink). Entries per second.
2. The bare parse of the same files, single process, nothing else:
   feedparser 6 (what a Singer tap author reaches for) and crmsync's own
   ElementTree/defusedxml parser (``crmsync_rss.parse.parse_feed``).
3. Polling 1,000 feeds that all answer 304 Not Modified.

    python bench/bench_rss.py --entries 100000

Writes bench/results/rss-N.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.feedserver import FeedServer  # noqa: E402 - the loopback server the tests use

CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"


def run_crmsync(work: Path, urls: list[str], name: str) -> dict:
    cfg = work / f"{name}.toml"
    feeds = ",\n  ".join(json.dumps(u) for u in urls)
    cfg.write_text(f'[store]\npath = "{name}.db"\n\n[sources.feeds]\nplugin = "rss"\nfollow_comments = false\nconcurrency = 32\nper_host = 32\nfeeds = [\n  {feeds}\n]\n')
    exe = Path(sys.executable).parent / "crmsync"
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "-c", str(cfg), "run", "--json", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    report = json.loads(proc.stdout.read())
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "report": report, "exit": os.waitstatus_to_exitcode(status)}


def bare_parse(files: list[Path]) -> dict:
    import feedparser

    from crmsync_rss.parse import parse_feed

    datas = [f.read_bytes() for f in files]
    out = {}
    t0 = time.perf_counter()
    n = sum(len(parse_feed(d).entries) for d in datas)
    out["crmsync_parse_feed"] = {"entries": n, "seconds": round(time.perf_counter() - t0, 3)}
    xml_only = [d for d in datas if not d.lstrip().startswith(b"{")]
    t0 = time.perf_counter()
    n = sum(len(feedparser.parse(d).entries) for d in xml_only)
    out["feedparser_xml_only"] = {"entries": n, "seconds": round(time.perf_counter() - t0, 3), "note": "feedparser cannot read JSON Feed; XML files only"}
    for v in out.values():
        v["entries_per_s"] = round(v["entries"] / v["seconds"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000, help="feed entries in the corpus (feeds are 40%% of its interactions)")
    ap.add_argument("--poll-feeds", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        raise SystemExit(f"corpus generator not found at {CORPUS_TOOL}")
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-rss-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(work / "c"), "--interactions", str(int(args.entries / 0.4)), "--seed", "1"], check=True, capture_output=True)
        files = sorted((work / "c" / "feeds").iterdir())
        server = FeedServer({f"/feeds/{f.name}": f.read_bytes() for f in files})
        try:
            plugin = run_crmsync(work, [server.url(f"/feeds/{f.name}") for f in files], "plugin")
            entries = plugin["report"]["sources"][0]["read"]
            again = run_crmsync(work, [server.url(f"/feeds/{f.name}") for f in files], "plugin")
        finally:
            server.close()
        parse = bare_parse(files)
        tiny = b'<rss version="2.0"><channel><title>t</title><item><guid>https://p.example/1</guid></item></channel></rss>'
        poll_server = FeedServer({f"/p/{i}.xml": tiny.replace(b"/1<", f"/{i}<".encode()) for i in range(args.poll_feeds)})
        try:
            urls = [poll_server.url(f"/p/{i}.xml") for i in range(args.poll_feeds)]
            run_crmsync(work, urls, "poll")
            poll = run_crmsync(work, urls, "poll")
        finally:
            poll_server.close()
    plugin_rate = entries / plugin["seconds"]
    result = {
        "entries": entries,
        "feeds": len(files),
        "plugin_seconds": plugin["seconds"],
        "plugin_entries_per_s": round(plugin_rate, 1),
        "plugin_peak_rss_mb": plugin["peak_rss_mb"],
        "second_run_all_304_seconds": again["seconds"],
        "bare_parse": parse,
        "ratio_plugin_to_feedparser": round(plugin_rate / parse["feedparser_xml_only"]["entries_per_s"], 2),
        "ratio_plugin_to_own_parse": round(plugin_rate / parse["crmsync_parse_feed"]["entries_per_s"], 2),
        "poll_feeds": args.poll_feeds,
        "poll_all_304_seconds": poll["seconds"],
        "poll_new": poll["report"]["sources"][0]["new"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rss-{args.entries}.json").write_text(json.dumps(result, indent=2))
    md = [f"# rss plugin, {entries} entries in {len(files)} feeds", "", "| measure | value |", "|---|---|"]
    md += [f"| whole plugin (HTTP + parse + normalize + store) | {result['plugin_entries_per_s']} entries/s ({plugin['seconds']} s, peak RSS {plugin['peak_rss_mb']} MB) |"]
    md += [f"| bare parse, {k} | {v['entries_per_s']} entries/s |" for k, v in parse.items()]
    md += [f"| ratio plugin / bare feedparser | {result['ratio_plugin_to_feedparser']} |", f"| ratio plugin / bare own parser | {result['ratio_plugin_to_own_parse']} |"]
    md += [f"| immediate second run (all 304) | {again['seconds']} s |", f"| poll {args.poll_feeds} feeds, all 304 | {poll['seconds']} s |"]
    (args.out / f"rss-{args.entries}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
