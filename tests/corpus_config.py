"""The crmsync config for a corpus from ../shared/bench/make_corpus.py (tests and bench/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

CORPUS_TOOL = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "make_corpus.py"

PLATFORM_MAPPING = (
    '{ id = "id", rating = "rating", scale = "rating_scale", title = "title", body = "text", published = "created_ms", language = "language", '
    'author_name = "user.display_name", author_handle = "user.screen_name", author_url = "user.profile_url", product = "product.name", '
    'product_id = "product.sku", helpful_votes = "helpful_count" }'
)


def make_corpus(out: Path, interactions: int, seed: int) -> Path:
    """Generate the shared benchmark corpus into ``out`` (in a test: skipped, saying why,
    when ../shared is not beside the project)."""
    if not CORPUS_TOOL.exists():
        import pytest

        pytest.skip(f"{CORPUS_TOOL} is not beside the project: this test needs the shared benchmark corpus")
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(out), "--interactions", str(interactions), "--seed", str(seed)], check=True, capture_output=True)
    return out


def corpus_config(corpus: Path, *, feeds: list[str] | None = None, sink: bool = True, enrichers: bool = True, extra: str = "", feed_options: str = "") -> str:
    """TOML for every source of the corpus (feeds as files unless URLs are given;
    ``feed_options`` adds lines to the rss source)."""
    feed_list = ", ".join(f'"{f}"' for f in feeds) if feeds else '"feeds/"'
    parts = [
        '[store]\npath = "state/crmsync.db"\n',
        f"[sources.feeds]\nplugin = \"rss\"\nfeeds = [{feed_list}]\nfollow_comments = false\n{feed_options}",
        '[sources.mbox]\nplugin = "email"\npaths = ["mail/archive.mbox"]\n',
        '[sources.maildir]\nplugin = "email"\npaths = ["mail/Maildir"]\n',
        '[sources.shop_reviews]\nplugin = "reviews"\nfiles = ["reviews/reviews.csv"]\nplatform = "shop"\n',
        f'[sources.platform_reviews]\nplugin = "reviews"\nfiles = ["reviews/platform.jsonl"]\nplatform = "platform"\nmapping = {PLATFORM_MAPPING}\n',
        '[sources.review_pages]\nplugin = "reviews"\npages = ["reviews/pages"]\n',
        '[sources.crm]\nplugin = "crm_csv"\nfile = "crm/contacts.csv"\n',
    ]
    if enrichers:
        parts += [
            '[enrichers.language]\nplugin = "language"\n',
            '[enrichers.sentiment]\nplugin = "sentiment"\n',
            '[enrichers.mentions]\nplugin = "mentions"\nterms = { "Acme Rocket" = [], "Acme Anvil" = [], "Acme Giant Magnet" = [], "Acme" = [] }\n',
            '[enrichers.triage]\nplugin = "triage"\nsupport_addresses = ["support@acme.example"]\n',
        ]
    if sink:
        parts.append('[sinks.crm_files]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"\n')
    return "\n".join(parts) + extra


def score(recs: dict[str, Any], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Contact matching (precision, recall) and sentiment agreement of stored
    interactions (native id -> Interaction) against the truth file's interactions."""
    tp = fp = fn = agree = labeled = missing = 0
    for item in truth:
        rec = recs.get(item["key"])
        if rec is None:
            missing += 1
            continue
        got = rec.author.crm_ids.get("generic") if rec.author else None
        if got and got == item["contact_id"]:
            tp += 1
        elif got:
            fp += 1
        elif item["contact_id"]:
            fn += 1
        if item["sentiment"]:
            labeled += 1
            agree += bool(rec.sentiment and rec.sentiment.label == item["sentiment"])
    return {"truth_interactions": len(truth), "missing": missing, "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
            "sentiment_agreement": agree / max(1, labeled), "sentiment_labeled": labeled}
