"""VADER (vaderSentiment 3.3) without its two quadratic-in-text loops.

``SentimentIntensityAnalyzer.polarity_scores`` first rebuilds the text character by
character to replace emoji (a Python loop with string concatenation per character),
and ``_negation_check`` lower-cases every word of the text for each sentiment word
it checks. On the corpus those two were 40% of VADER's time. :class:`Analyzer` skips
the rebuild when the text holds no emoji VADER knows, and hands the negation check
the four words it reads. Everything else is VADER's own code, and the scores are
identical (``tests/test_sentiment.py`` holds them to the original's, text by text).
"""

from __future__ import annotations

from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, SentiText


class Analyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the rebuild looks at one character at a time: only one-character keys can match
        self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)

    def polarity_scores(self, text: str) -> dict[str, float]:
        if not self._emoji_chars.isdisjoint(text):
            return dict(super().polarity_scores(text))  # emoji: VADER's own rebuild
        # what the original does after the rebuild, which returns text.strip() here
        sentitext = SentiText(text.strip())
        sentiments: list[float] = []
        words = sentitext.words_and_emoticons
        for i, item in enumerate(words):
            lowered = item.lower()
            if lowered in _BOOSTERS or (i < len(words) - 1 and lowered == "kind" and words[i + 1].lower() == "of"):
                sentiments.append(0)
                continue
            sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
        sentiments = self._but_check(words, sentiments)
        return dict(self.score_valence(sentiments, sentitext.text))

    @staticmethod
    def _negation_check(valence: float, words_and_emoticons: list[str], start_i: int, i: int) -> float:
        # the check reads words i-1 .. i-3 (never a negative index: sentiment_valence
        # calls it only with i > start_i), so the slice of those is enough
        lo = max(0, i - 3)
        return float(SentimentIntensityAnalyzer._negation_check(valence, words_and_emoticons[lo : i + 1], start_i, i - lo))


def _boosters() -> frozenset[str]:
    from vaderSentiment.vaderSentiment import BOOSTER_DICT

    return frozenset(BOOSTER_DICT)


_BOOSTERS = _boosters()
