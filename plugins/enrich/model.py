"""The sentiment enricher's trained layer: a linear model (logistic regression) over a
text's words and word pairs, with VADER's customer-service score as one more input,
and one such model per emotion (anger, frustration, urgency, joy, gratitude).

A lexicon scores the words it knows; most complaints in product reviews carry none
("i ended up sending the unit back", "the buttons are too easy to hit"). The model
learnt from public labelled text which words and pairs lean which way. It is trained
by ``bench/train_sentiment.py`` (scikit-learn, not needed at run time) and ships as
``sentiment_model.json.gz``: the weights, the bias and where they came from. Scoring a
text is a dictionary lookup per feature, so it needs nothing beyond the standard library.

``features`` is the one tokenizer of both sides: training feeds it to scikit-learn's
vectorizer, and scoring reads the same features back.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import re
from importlib import resources
from itertools import repeat
from typing import Any

MODEL_FILE = "sentiment_model.json.gz"

_TOKEN = re.compile(r"[a-z][a-z']*|[!?]")
#: words that negate what follows: the next words are marked ("not good" -> NOT_good)
NEGATORS = frozenset({"not", "no", "never", "cannot", "nothing", "nobody", "none", "neither", "nor", "without", "hardly"})
NEGATION_SCOPE = 3


def features(text: str) -> list[str]:
    """The model's features of ``text``: lower-cased words (a word within three of a
    negator marked ``NOT_``) and each pair of neighbouring ones."""
    lower = text.lower()
    words = _TOKEN.findall(lower)
    if "n't" not in lower and NEGATORS.isdisjoint(words):
        marked = words  # nothing to mark (most texts): no loop over the words
    else:
        marked = []
        scope = 0
        for word in words:
            if word in NEGATORS or word.endswith("n't"):
                scope = NEGATION_SCOPE
                marked.append(word)
                continue
            if scope:
                marked.append("NOT_" + word)
                scope -= 1
            else:
                marked.append(word)
    return marked + list(map(" ".join, zip(marked, marked[1:])))


class LinearModel:
    """Weights per feature, the weight of the lexicon's score, and a bias; with
    ``emotions``, one more set of weights, a bias and a threshold per emotion."""

    def __init__(self, weights: dict[str, float], lexicon_weight: float, bias: float, meta: dict[str, Any] | None = None,
                 emotions: dict[str, tuple[dict[str, float], float, float]] | None = None) -> None:
        self.weights = weights
        self.lexicon_weight = lexicon_weight
        self.bias = bias
        self.meta = meta or {}
        self.norm = self.meta.get("norm")
        self.emotions = emotions or {}
        # p >= threshold, as weights' sum >= the threshold's log-odds less the bias
        self._cuts = {e: math.log(t / (1 - t)) - b for e, (_w, b, t) in self.emotions.items()}

    def _sum(self, weights: dict[str, float], found: set[str]) -> float:
        """The weights of ``found`` (each feature once); with ``norm = "sqrt"`` divided
        by the square root of how many features the text has, so that a long mail's
        many neutral words do not outvote its one opinion."""
        total = sum(map(weights.get, found, repeat(0.0, len(found))))
        return total / math.sqrt(len(found)) if self.norm == "sqrt" and found else total

    def logit(self, text: str | set[str], lexicon_score: float) -> float:
        """Log-odds that ``text`` (or its ``set(features(text))``) is positive."""
        found = set(features(text)) if isinstance(text, str) else text
        return self.bias + self.lexicon_weight * lexicon_score + self._sum(self.weights, found)

    def score(self, text: str | set[str], lexicon_score: float) -> float:
        """-1..1: the probability of positive, rescaled (2p - 1 = tanh(logit / 2))."""
        return math.tanh(self.logit(text, lexicon_score) / 2)

    def emotion_tags(self, text: str | set[str], among: tuple[str, ...] | None = None) -> set[str]:
        """The emotions (of ``among``, default all) whose probability reaches their threshold."""
        found = set(features(text)) if isinstance(text, str) else text
        tags = set()
        for emotion in self.emotions if among is None else among:
            if emotion in self._cuts and self._sum(self.emotions[emotion][0], found) >= self._cuts[emotion]:
                tags.add(emotion)
        return tags

    def to_json(self) -> dict[str, Any]:
        emotions = {e: {"bias": b, "threshold": t, "weights": w} for e, (w, b, t) in self.emotions.items()}
        return {**self.meta, "bias": self.bias, "lexicon_weight": self.lexicon_weight, "weights": self.weights, "emotions": emotions}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        meta = {k: v for k, v in data.items() if k not in ("bias", "lexicon_weight", "weights", "emotions")}
        emotions = {str(e): ({str(k): float(v) for k, v in m["weights"].items()}, float(m["bias"]), float(m["threshold"]))
                    for e, m in (data.get("emotions") or {}).items()}
        return cls({str(k): float(v) for k, v in data["weights"].items()}, float(data["lexicon_weight"]), float(data["bias"]), meta, emotions)


@functools.lru_cache(maxsize=1)
def bundled() -> LinearModel:
    """The model this package ships (read once per process)."""
    raw = resources.files(__package__).joinpath(MODEL_FILE).read_bytes()
    return LinearModel.from_json(json.loads(gzip.decompress(raw)))
