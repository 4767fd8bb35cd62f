#!/usr/bin/env python3
"""crmsync end to end against the anchors, in one run: one command, a markdown and JSON report.

For each corpus size (default 10k and 100k interactions, from
../shared/bench/make_corpus.py, feeds served over a loopback HTTP server):

* **crmsync**: `crmsync run` with every source (rss over HTTP, mbox, Maildir, the
  three review exports, CRM contacts), identity matching and the enrichers
  (language, sentiment, mentions, triage), into the SQLite store and the crm_csv
  sink. Interactions per second, peak RSS (wait4, from the OS) and the time of an
  immediate second run that has nothing new.
* **anchor 1, Singer transport**: a singer-sdk tap emitting crmsync's normalized
  records from JSON Lines, piped into target-jsonl.
* **anchor 2, dlt transport**: dlt loading the same records into DuckDB with
  ``loader_file_format="jsonl"``.
* **anchor 3, the ecosystem's default pipeline**: a singer-sdk tap parsing the raw
  feeds, mbox/Maildir and review exports with feedparser, ``email.policy.default``
  and ``csv``, piped into target-jsonl.
* **anchor 4, the parse floor**: the fastest plain parse of the same raw inputs
  (ElementTree, ``json``, the ``compat32`` email policy, ``csv``), one process.
* **polling**: 1,000 feeds that all answer 304.

Each anchor's packages live in their own virtual environment under
``bench/.venvs/`` (created on first use; target-jsonl and dlt pin conflicting
libraries). Ratios are crmsync's rate over the anchor's, measured in this run.

    .venv/bin/python bench/bench_all.py                      # 10k and 100k
    .venv/bin/python bench/bench_all.py --sizes 10000 --no-anchors

Writes bench/results/bench-all.{json,md} (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.corpus_config import corpus_config, score  # noqa: E402 - the corpus config and scoring the tests use
from tests.feedserver import FeedServer  # noqa: E402 - and their loopback feed server

CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"
VENVS = BENCH / ".venvs"
#: each anchor's own virtual environment (target-jsonl and dlt pin conflicting libraries;
#: the Singer taps need singer-sdk, which a plain ``pip install crmsync`` does not bring)
ANCHOR_PINS = {"target-jsonl": ["target-jsonl==0.1.4"], "dlt": ["dlt[duckdb]"], "singer-tap": ["singer-sdk>=0.40", "feedparser>=6.0.11"]}

#: issue 18's targets (at 10k and 100k, every enricher on)
TARGETS = {
    "singer_transport": 1.0,
    "dlt_transport": 1.2,
    "default_pipeline": 3.0,
    "parse_floor": 0.3,
}
#: polling: 1,000 unchanged feeds in 2 s (issue 9), 100,000 in 60 s (issue 18)
POLL_S_PER_FEED = 0.0006


def config(corpus: Path, feed_urls: list[str]) -> str:
    """Every source of the corpus (feeds over HTTP), the enrichers and the crm_csv sink:
    the configuration the tests use (tests/corpus_config.py)."""
    return corpus_config(corpus, feeds=feed_urls, feed_options="concurrency = 32\nper_host = 32\n")


# processes ---------------------------------------------------------------
def timed(cmd: list[str], cwd: Path, *, shell: bool = False, stdout: Any = subprocess.PIPE) -> dict[str, Any]:
    """Run ``cmd``; wall seconds and the peak RSS of it and its children (wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd if not shell else " ".join(cmd), cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, shell=shell)
    chunks: dict[str, bytes] = {"out": b"", "err": b""}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    peak = {"pss": 0}
    sampling = threading.Event()

    def sample() -> None:
        # the whole process tree (crmsync's source workers too): the sum of PSS, which
        # counts a page shared by forked processes once, split between them
        while not sampling.wait(0.2):
            peak["pss"] = max(peak["pss"], _tree_pss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    readers = [threading.Thread(target=drain, args=("err", proc.stderr))]
    if stdout is subprocess.PIPE:
        readers.append(threading.Thread(target=drain, args=("out", proc.stdout)))
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    out, err = chunks["out"], chunks["err"]
    _, status, usage = os.wait4(proc.pid, 0)  # not communicate(): wait4 gives the peak RSS
    seconds = time.perf_counter() - t0
    sampling.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    return {"seconds": seconds, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "peak_tree_pss_mb": round(peak["pss"] / 1024, 1),
            "exit": code, "stdout": out.decode(), "stderr": err.decode()[-3000:]}


def _tree_pss_kb(root: int) -> int:
    """Sum of PSS (kB) over ``root`` and its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def venv_bin(name: str) -> Path:
    """bench/.venvs/NAME with the anchor's pins, made once."""
    home = VENVS / name
    marker = home / ".pins"
    pins = ANCHOR_PINS[name]
    if not marker.exists() or marker.read_text() != "\n".join(pins):
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        print(f"  installing {' '.join(pins)} into {home} ...", flush=True)
        subprocess.run([str(home / "bin" / "pip"), "install", "-q", *pins], check=True)
        marker.write_text("\n".join(pins))
    return home / "bin"


# the parse floor -----------------------------------------------------------
def parse_floor(corpus: Path) -> dict[str, Any]:
    """Plain parses of every raw input, single process: records and seconds."""
    import csv
    import email
    import email.policy
    import mailbox
    import xml.etree.ElementTree as ET  # noqa: N817,S405 - the trusted generated corpus, the floor

    counts = {"feeds": 0, "mail": 0, "reviews": 0}
    t0 = time.perf_counter()
    for path in sorted((corpus / "feeds").iterdir()):
        data = path.read_bytes()
        if data.lstrip().startswith(b"{"):
            counts["feeds"] += len(json.loads(data).get("items", []))
            continue
        root = ET.fromstring(data)  # noqa: S314
        for el in root.iter():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag in ("item", "entry"):
                counts["feeds"] += 1
                {c.tag.rsplit("}", 1)[-1]: (c.text or "") for c in el}  # noqa: B018 - touch every field
    factory = lambda fh: email.message_from_binary_file(fh, policy=email.policy.compat32)  # noqa: E731
    for msg in mailbox.mbox(corpus / "mail" / "archive.mbox", factory=factory):
        msg.get_payload()
        counts["mail"] += 1
    for sub in ("cur", "new"):
        d = corpus / "mail" / "Maildir" / sub
        for path in d.iterdir() if d.exists() else []:
            email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32).get_payload()
            counts["mail"] += 1
    with open(corpus / "reviews" / "reviews.csv", encoding="utf-8", newline="") as fh:
        counts["reviews"] += sum(1 for _ in csv.DictReader(fh))
    with open(corpus / "reviews" / "platform.jsonl", encoding="utf-8") as fh:
        counts["reviews"] += sum(1 for line in fh if json.loads(line))
    seconds = time.perf_counter() - t0
    return {"records": sum(counts.values()), "seconds": seconds, "by_input": counts}


# one size ------------------------------------------------------------------
def bench_size(n: int, seed: int, work: Path, anchors: bool) -> dict[str, Any]:
    corpus = work / f"corpus-{n}"
    print(f"[{n}] corpus ...", flush=True)
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(corpus), "--interactions", str(n), "--seed", str(seed)], check=True, capture_output=True)
    files = sorted((corpus / "feeds").iterdir())
    server = FeedServer({f"/feeds/{f.name}": f.read_bytes() for f in files})
    exe = Path(sys.executable).parent / "crmsync"
    try:
        (corpus / "crmsync.toml").write_text(config(corpus, [server.url(f"/feeds/{f.name}") for f in files]))
        run = [str(exe), "-c", "crmsync.toml", "run", "--json", "--no-progress"]
        print(f"[{n}] crmsync run ...", flush=True)
        first = timed(run, corpus)
        second = timed(run, corpus)
    finally:
        server.close()
    for r in (first, second):
        if r["exit"] not in (0, 1):
            raise SystemExit(f"crmsync run failed ({r['exit']}): {r['stderr']}")
    quality = score_against_truth(corpus)
    report, again = json.loads(first["stdout"]), json.loads(second["stdout"])
    stored = sum(s["new"] for s in report["sources"] if s["plugin"] != "crm_csv")
    result: dict[str, Any] = {
        "interactions": n,
        "crmsync": {
            "interactions_stored": stored,
            "quarantined": sum(s["quarantined"] for s in report["sources"]),
            "delivered": sum(s["delivered"] for s in report["sinks"]),
            "seconds": round(first["seconds"], 3),
            "per_s": round(stored / first["seconds"], 1),
            "peak_rss_mb": first["peak_rss_mb"],
            "peak_tree_pss_mb": first["peak_tree_pss_mb"],
            "second_run_s": round(second["seconds"], 3),
            "second_run_share": round(second["seconds"] / first["seconds"], 4),
            "second_run_new": sum(s["new"] for s in again["sources"]),
            "second_run_delivered": sum(s["delivered"] for s in again["sinks"]),
            "per_source_s": {s["name"]: s["duration"] for s in report["sources"]},
            "identity": report.get("identity", {}),
        },
        "quality": quality,
        "anchors": {},
    }
    if not anchors:
        return result
    records = work / f"records-{n}.jsonl"
    subprocess.run([str(exe), "-c", "crmsync.toml", "export", "-o", str(records)], cwd=corpus, check=True, capture_output=True)
    n_records = sum(1 for _ in open(records, encoding="utf-8"))
    tj = venv_bin("target-jsonl") / "target-jsonl"
    (work / "tj").mkdir(exist_ok=True)
    (work / "tj.json").write_text(json.dumps({"destination_path": str(work / "tj"), "do_timestamp_file": False}))

    def singer(tap: str, tap_config: dict[str, Any], label: str) -> dict[str, Any]:
        shutil.rmtree(work / "tj", ignore_errors=True)
        (work / "tj").mkdir()
        (work / "tap.json").write_text(json.dumps(tap_config))
        print(f"[{n}] anchor: {label} ...", flush=True)
        tap_python = venv_bin("singer-tap") / "python"
        pipeline = f"{tap_python} {BENCH / 'anchors' / tap} --config {work / 'tap.json'} | {tj} --config {work / 'tj.json'}"
        # both sides' exit status: a tap that dies leaves target-jsonl exiting 0 on an empty stream
        res = timed(["bash", "-c", f'{pipeline}; s=("${{PIPESTATUS[@]}}"); echo "exit status: tap ${{s[0]}}, target ${{s[1]}}" >&2; [ "${{s[0]}}" = 0 ] && [ "${{s[1]}}" = 0 ]'], work)
        if res["exit"] != 0:
            raise SystemExit(f"{label} failed ({res['stderr'].strip().splitlines()[-1]}):\n{res['stderr']}")
        written = sum(sum(1 for _ in open(f, encoding="utf-8")) for f in (work / "tj").glob("*.jsonl"))
        return {"records": written, "seconds": round(res["seconds"], 3), "peak_rss_mb": res["peak_rss_mb"]}

    a = result["anchors"]
    import crmsync

    schema = work / "interaction.schema.json"
    schema.write_text(json.dumps(crmsync.flat_json_schema(crmsync.Interaction)))
    a["singer_transport"] = singer("tap_records.py", {"path": str(records), "schema": str(schema)}, "singer-sdk tap of the normalized records | target-jsonl")
    print(f"[{n}] anchor: dlt into DuckDB (jsonl) ...", flush=True)
    dlt_bin = venv_bin("dlt")
    res = timed([str(dlt_bin / "python"), str(BENCH / "anchors" / "dlt_load.py"), str(records), str(work / f"dlt-{n}")], work)
    if res["exit"] != 0:
        raise SystemExit(f"dlt anchor failed: {res['stderr']}")
    dlt = json.loads(res["stdout"].strip().splitlines()[-1])
    a["dlt_transport"] = {"records": dlt["records"], "seconds": round(res["seconds"], 3), "peak_rss_mb": res["peak_rss_mb"]}
    a["default_pipeline"] = singer("tap_raw.py", {"corpus": str(corpus)}, "feedparser / policy.default / csv tap | target-jsonl")
    print(f"[{n}] anchor: parse floor ...", flush=True)
    floor = parse_floor(corpus)
    a["parse_floor"] = {"records": floor["records"], "seconds": round(floor["seconds"], 3), "by_input": floor["by_input"]}
    # an anchor that moved fewer records than crmsync did from the same inputs is broken
    # (a crashed tap, a missing module): a ratio against it would flatter crmsync
    raw_inputs = stored - sum(s["new"] for s in report["sources"] if s["name"] == "review_pages")  # the raw anchors read no HTML pages
    expected = {"singer_transport": n_records, "dlt_transport": n_records, "default_pipeline": raw_inputs, "parse_floor": raw_inputs}
    for name, v in a.items():
        if v["records"] < expected[name]:
            raise SystemExit(f"anchor {name} moved {v['records']} records where crmsync moved {expected[name]} from the same inputs: refusing to compare against it")
    for name, v in a.items():
        v["per_s"] = round(v["records"] / v["seconds"], 1)
        v["ratio"] = round(result["crmsync"]["per_s"] / v["per_s"], 2)
        v["target"] = TARGETS[name]
        v["met"] = v["ratio"] >= TARGETS[name]
    result["normalized_records"] = n_records
    return result


def score_against_truth(corpus: Path) -> dict[str, Any]:
    """Contact-match precision/recall and sentiment agreement against crm/truth.json."""
    from crmsync.store import Store

    truth = json.loads((corpus / "crm" / "truth.json").read_text())["interactions"]
    store = Store(f"sqlite:///{corpus / 'state' / 'crmsync.db'}")
    try:
        recs = {r.native_id: r for r, _ in store.interactions.iter()}
    finally:
        store.dispose()
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in score(recs, truth).items()}


def poll_304(feeds: int, work: Path) -> dict[str, Any]:
    tiny = b'<rss version="2.0"><channel><title>t</title><item><guid>https://p.example/1</guid></item></channel></rss>'
    server = FeedServer({f"/p/{i}.xml": tiny.replace(b"/1<", f"/{i}<".encode()) for i in range(feeds)})
    exe = Path(sys.executable).parent / "crmsync"
    d = work / "poll"
    d.mkdir()
    try:
        urls = ",\n  ".join(json.dumps(server.url(f"/p/{i}.xml")) for i in range(feeds))
        (d / "crmsync.toml").write_text(f'[store]\npath = "poll.db"\n\n[sources.feeds]\nplugin = "rss"\nconcurrency = 32\nper_host = 32\nfeeds = [\n  {urls}\n]\n')
        cmd = [str(exe), "-c", "crmsync.toml", "run", "--json", "--no-progress"]
        timed(cmd, d)
        again = timed(cmd, d)
    finally:
        server.close()
    target = max(2.0, feeds * POLL_S_PER_FEED)
    return {"feeds": feeds, "seconds": round(again["seconds"], 3), "new": json.loads(again["stdout"])["sources"][0]["new"], "target_s": target, "met": again["seconds"] <= target}


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# crmsync benchmarks ({res['machine']})", "", f"Corpus seed {res['seed']}; {res['date']}.", ""]
    for size in res["sizes"]:
        c = size["crmsync"]
        lines += [f"## {size['interactions']:,} interactions", "",
                  "| | records | seconds | records/s | crmsync ratio | target | met |", "|---|---:|---:|---:|---:|---:|---|",
                  f"| **crmsync run** (all sources, identity, enrichers, store, crm_csv sink) | {c['interactions_stored']} | {c['seconds']} | {c['per_s']} | | | |"]
        labels = {"singer_transport": "1. Singer transport (tap of normalized records \\| target-jsonl)", "dlt_transport": "2. dlt into DuckDB, jsonl loader",
                  "default_pipeline": "3. feedparser / policy.default / csv tap \\| target-jsonl", "parse_floor": "4. parse floor (ElementTree, compat32, csv), one process"}
        for name, a in size["anchors"].items():
            lines.append(f"| {labels[name]} | {a['records']} | {a['seconds']} | {a['per_s']} | {a['ratio']}x | ≥ {a['target']}x | {'yes' if a['met'] else '**no**'} |")
        q = size["quality"]
        lines += ["", f"- against the truth file: {q['truth_interactions'] - q['missing']} of {q['truth_interactions']} interactions stored; contact matching precision "
                  f"{q['precision']}, recall {q['recall']}; sentiment agreement {q['sentiment_agreement']} on {q['sentiment_labeled']} unambiguous texts"]
        lines += [f"- peak memory of `crmsync run`: {c['peak_tree_pss_mb']} MB summed over its process tree (PSS, sampled every 0.2 s); "
                  f"largest single process {c['peak_rss_mb']} MB RSS (wait4)", f"- immediate second run: {c['second_run_s']} s = {c['second_run_share']:.1%} of the first "
                  f"({c['second_run_new']} new, {c['second_run_delivered']} delivered; target ≤ 5%: {'yes' if c['second_run_share'] <= 0.05 else '**no**'})",
                  f"- per source (s): {', '.join(f'{k} {v}' for k, v in c['per_source_s'].items())}", ""]
    if "rss_growth" in res:
        g = res["rss_growth"]
        lines.append(f"- peak memory (process tree PSS) at the largest size / smallest: {g['ratio']}x ({g['large_mb']} MB vs {g['small_mb']} MB; target ≤ 1.3x and < 500 MB: {'yes' if g['met'] else '**no**'})")
    if "rate_at_scale" in res:
        g = res["rate_at_scale"]
        lines.append(f"- rate at the largest size / the size before: {g['ratio']}x ({g['last']} vs {g['before']} interactions/s; target ≥ 0.9x: {'yes' if g['met'] else '**no**'})")
    if "poll" in res:
        p = res["poll"]
        lines.append(f"- {p['feeds']} feeds all answering 304: {p['seconds']} s ({p['new']} new; target ≤ {p['target_s']:g} s: {'yes' if p['met'] else '**no**'})")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="corpus sizes (interactions)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-anchors", action="store_true", help="crmsync alone (no anchor venvs)")
    ap.add_argument("--poll-feeds", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if not CORPUS_TOOL.exists():
        raise SystemExit(f"corpus generator not found at {CORPUS_TOOL} (it lives in ../shared/bench)")
    res: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", "seed": args.seed,
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sizes": []}
    # byte-compile the project as a wheel install does (an editable install under
    # PYTHONDONTWRITEBYTECODE would compile every module again in every process)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "core"), str(ROOT / "plugins")], check=False, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-all-") as tmp:
        work = Path(tmp)
        for n in sorted(args.sizes):
            d = work / str(n)
            d.mkdir()
            res["sizes"].append(bench_size(n, args.seed, d, anchors=not args.no_anchors))
        if args.poll_feeds:
            print(f"polling {args.poll_feeds} feeds (304) ...", flush=True)
            res["poll"] = poll_304(args.poll_feeds, work)
    if len(res["sizes"]) > 1:
        # the whole run's memory: its process tree (the run and its source workers)
        small, large = res["sizes"][0]["crmsync"]["peak_tree_pss_mb"], res["sizes"][-1]["crmsync"]["peak_tree_pss_mb"]
        res["rss_growth"] = {"small_mb": small, "large_mb": large, "ratio": round(large / small, 2), "met": large / small <= 1.3 and large < 500}
        # and the rate: the largest size within 10% of the one before it (issue 18, at 1M)
        before, last = res["sizes"][-2]["crmsync"]["per_s"], res["sizes"][-1]["crmsync"]["per_s"]
        res["rate_at_scale"] = {"before": before, "last": last, "ratio": round(last / before, 2), "met": last >= 0.9 * before}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-all.json").write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (args.out / "bench-all.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
