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
* ``--goemotions PATH``: the test split of GoEmotions (Demszky et al., ACL 2020; 5,427
  Reddit comments, each tagged with up to 27 emotions by three raters; CC BY 4.0),
  ``goemotions/data/test.tsv`` of github.com/google-research/google-research (also
  ``data/original/test.tsv`` of monologg/GoEmotions-pytorch). Used for the emotion tags
  only, their categories mapped onto crmsync's (``GOEMOTIONS_MAP``): per-emotion
  precision and recall. Not redistributed here either.

    .venv/bin/python bench/bench_sentiment.py --amazon /path/to/amazonReviewSnippets_GroundTruth.txt \
        --goemotions /path/to/test.tsv

Emotion agreement is reported for every dataset that carries emotion labels (the own
set and GoEmotions), for the ``builtin`` lists and, when ``crmsync[emotions]`` is
installed, for ``nrc``.

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


#: crmsync's emotions and the GoEmotions categories each one stands for
GOEMOTIONS_MAP = {
    "anger": {"anger"},
    "frustration": {"annoyance", "disappointment"},
    "urgency": {"fear", "nervousness"},
    "joy": {"joy", "excitement", "amusement", "admiration", "love"},  # crmsync's joy is a happy customer: praise too
    "gratitude": {"gratitude"},
}
#: GoEmotions' label ids, in the order of its ``emotions.txt``
GOEMOTIONS_LABELS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire disappointment disapproval "
    "disgust embarrassment excitement fear gratitude grief joy love nervousness optimism pride realization relief "
    "remorse sadness surprise neutral"
).split()


def load_own() -> list[tuple[str, str, set[str]]]:
    rows = [json.loads(line) for line in OWN.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["text"], r["label"], set(r.get("emotions", ()))) for r in rows]


def goemotions_rows(path: Path) -> list[tuple[str, set[str]]]:
    """A GoEmotions split (text, label ids, comment id a line): each text and the names
    of its categories."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out.append((parts[0], {GOEMOTIONS_LABELS[int(i)] for i in parts[1].split(",") if i.strip().isdigit()}))
    return out


def load_goemotions(path: Path) -> list[tuple[str, str, set[str]]]:
    """Each text with crmsync's emotions for its categories (GOEMOTIONS_MAP)."""
    return [(text, "", {emotion for emotion, theirs in GOEMOTIONS_MAP.items() if names & theirs}) for text, names in goemotions_rows(path)]


def load_amazon(path: Path) -> list[tuple[str, str, set[str] | None]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        score = float(parts[1])
        if score <= -0.5:
            out.append((parts[2], "negative", None))
        elif score >= 0.5:
            out.append((parts[2], "positive", None))
    return out


def emotion_agreement(tagged: list[set[str]], gold: list[set[str]]) -> dict[str, dict[str, float | int | None]]:
    """Per emotion: how many texts carry it, and crmsync's precision and recall on it."""
    out: dict[str, dict[str, float | int | None]] = {}
    for emotion in GOEMOTIONS_MAP:
        hit = sum(1 for t, g in zip(tagged, gold, strict=True) if emotion in t and emotion in g)
        said = sum(1 for t in tagged if emotion in t)
        true = sum(1 for g in gold if emotion in g)
        out[emotion] = {
            "texts": true,
            "tagged": said,
            "precision": round(hit / said, 3) if said else None,
            "recall": round(hit / true, 3) if true else None,
        }
    return out


def evaluate(name: str, data: list[tuple[str, str, set[str] | None]], options: dict[str, Any]) -> dict[str, Any]:
    import crmsync
    from crmsync_enrich.enrichers import SentimentEnricher, TriageEnricher

    from crmsync.host.config import validate_options

    sentiment = SentimentEnricher("sentiment", validate_options(SentimentEnricher.config_schema, options, where="sentiment"))
    triage = TriageEnricher("triage", validate_options(TriageEnricher.config_schema, {}, where="triage"))
    recs = [crmsync.Interaction.create(source="bench", channel="feed", native_id=str(i), kind="post", body_text=text) for i, (text, _label, _emotions) in enumerate(data)]
    t0 = time.process_time()
    scored = sentiment.enrich_batch(recs)
    sentiment_s = time.process_time() - t0
    t0 = time.process_time()
    triaged = triage.enrich_batch(scored)
    triage_s = time.process_time() - t0
    by_class: dict[str, list[int]] = {}
    for rec, (_text, label, _emotions) in zip(triaged, data, strict=True):
        if not label:
            continue
        got = rec.sentiment.label if rec.sentiment else "neutral"
        hits = by_class.setdefault(label, [0, 0])
        hits[0] += got == label
        hits[1] += 1
    recall = {k: round(h / n, 3) for k, (h, n) in sorted(by_class.items())}
    complaints = [r for r, (_t, label, _e) in zip(triaged, data, strict=True) if label == "negative"]
    emotions: dict[str, int] = {}
    for r in triaged:
        for e in r.extra.get("emotions", []):
            emotions[e] = emotions.get(e, 0) + 1
    return {
        "dataset": name,
        "texts": len(data),
        "recall": recall,
        "balanced_accuracy": round(sum(recall.values()) / len(recall), 3) if recall else None,
        "complaints_needing_response": round(sum(1 for r in complaints if r.needs_response) / len(complaints), 3) if complaints else None,
        "sentiment_us_per_text": round(sentiment_s / len(data) * 1e6, 1),
        "triage_us_per_text": round(triage_s / len(data) * 1e6, 1),
        "emotions": emotions,
        "emotion_agreement": emotion_agreement([set(r.extra.get("emotions", ())) for r in triaged], [e for _t, _l, e in data])
        if all(e is not None for _t, _l, e in data) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amazon", type=Path, help="amazonReviewSnippets_GroundTruth.txt (see above)")
    ap.add_argument("--goemotions", type=Path, help="GoEmotions' test.tsv (see above)")
    ap.add_argument("--options", default="{}", help="the sentiment enricher's options, as JSON")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "bench-sentiment.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    options = json.loads(args.options)
    results = [evaluate("customer_service (own)", load_own(), options)]
    if args.amazon:
        results.append(evaluate("amazon snippets (Hutto & Gilbert 2014)", load_amazon(args.amazon), options))
    if args.goemotions:
        results.append(evaluate("GoEmotions test split (Demszky et al. 2020)", load_goemotions(args.goemotions), options))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("| dataset | texts | recall | balanced accuracy | complaints needing a response | µs/text (sentiment, triage) |")
    print("|---|---:|---|---:|---:|---:|")
    for r in results:
        rec = ", ".join(f"{k} {v}" for k, v in r["recall"].items()) or "(no sentiment labels)"
        print(f"| {r['dataset']} | {r['texts']} | {rec} | {r['balanced_accuracy']} | {r['complaints_needing_response']} | {r['sentiment_us_per_text']}, {r['triage_us_per_text']} |")
    print()
    print("| dataset | emotion | labelled texts | tagged | precision | recall |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        for emotion, a in (r["emotion_agreement"] or {}).items():
            print(f"| {r['dataset']} | {emotion} | {a['texts']} | {a['tagged']} | {a['precision']} | {a['recall']} |")


if __name__ == "__main__":
    main()
