#!/usr/bin/env python3
"""Sentiment, emotions and triage on labelled text: per-class recall, balanced
accuracy, the share of complaints triaged as needing a response, and CPU µs per
text. The texts go in as plain text (no star rating), as a forum post or a mail
would.

Datasets:

* ``tests/data/customer_service.jsonl`` (in the repository): short customer-service
  texts written for crmsync's tests (complaints, questions, thanks), labelled by
  hand. The lexicon was written against the same kind of text: treat this as a
  regression check, not an unbiased measure.
* ``--amazon PATH``: the 3,708 Amazon review sentences rated by 20 people each
  (Hutto & Gilbert, ICWSM 2014), ``amazonReviewSnippets_GroundTruth.txt`` inside
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` of github.com/cjhutto/vaderSentiment.
  A mean rating <= -0.5 is negative, >= 0.5 positive; the rest is left out. Not
  redistributed here: fetch it yourself.

    .venv/bin/python bench/bench_sentiment.py --amazon /path/to/amazonReviewSnippets_GroundTruth.txt

Writes bench/results/bench-sentiment.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OWN = ROOT / "tests" / "data" / "customer_service.jsonl"


def load_own() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in OWN.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["text"], r["label"]) for r in rows]


def load_amazon(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        score = float(parts[1])
        if score <= -0.5:
            out.append((parts[2], "negative"))
        elif score >= 0.5:
            out.append((parts[2], "positive"))
    return out


def evaluate(name: str, data: list[tuple[str, str]], options: dict[str, Any]) -> dict[str, Any]:
    import crmsync
    from crmsync_enrich.enrichers import SentimentEnricher, TriageEnricher

    from crmsync.host.config import validate_options

    sentiment = SentimentEnricher("sentiment", validate_options(SentimentEnricher.config_schema, options, where="sentiment"))
    triage = TriageEnricher("triage", validate_options(TriageEnricher.config_schema, {}, where="triage"))
    recs = [crmsync.Interaction.create(source="bench", channel="forum", native_id=str(i), kind="post", body_text=text) for i, (text, _label) in enumerate(data)]
    t0 = time.process_time()
    scored = sentiment.enrich_batch(recs)
    sentiment_s = time.process_time() - t0
    t0 = time.process_time()
    triaged = triage.enrich_batch(scored)
    triage_s = time.process_time() - t0
    by_class: dict[str, list[int]] = {}
    for rec, (_text, label) in zip(triaged, data, strict=True):
        got = rec.sentiment.label if rec.sentiment else "neutral"
        hits = by_class.setdefault(label, [0, 0])
        hits[0] += got == label
        hits[1] += 1
    recall = {k: round(h / n, 3) for k, (h, n) in sorted(by_class.items())}
    complaints = [r for r, (_t, label) in zip(triaged, data, strict=True) if label == "negative"]
    emotions: dict[str, int] = {}
    for r in triaged:
        for e in r.extra.get("emotions", []):
            emotions[e] = emotions.get(e, 0) + 1
    return {
        "dataset": name,
        "texts": len(data),
        "recall": recall,
        "balanced_accuracy": round(sum(recall.values()) / len(recall), 3),
        "complaints_needing_response": round(sum(1 for r in complaints if r.needs_response) / len(complaints), 3) if complaints else None,
        "sentiment_us_per_text": round(sentiment_s / len(data) * 1e6, 1),
        "triage_us_per_text": round(triage_s / len(data) * 1e6, 1),
        "emotions": emotions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amazon", type=Path, help="amazonReviewSnippets_GroundTruth.txt (see above)")
    ap.add_argument("--options", default="{}", help="the sentiment enricher's options, as JSON")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "bench-sentiment.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    options = json.loads(args.options)
    results = [evaluate("customer_service (own)", load_own(), options)]
    if args.amazon:
        results.append(evaluate("amazon snippets (Hutto & Gilbert 2014)", load_amazon(args.amazon), options))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("| dataset | texts | recall | balanced accuracy | complaints needing a response | µs/text (sentiment, triage) |")
    print("|---|---:|---|---:|---:|---:|")
    for r in results:
        rec = ", ".join(f"{k} {v}" for k, v in r["recall"].items())
        print(f"| {r['dataset']} | {r['texts']} | {rec} | {r['balanced_accuracy']} | {r['complaints_needing_response']} | {r['sentiment_us_per_text']}, {r['triage_us_per_text']} |")


if __name__ == "__main__":
    main()
