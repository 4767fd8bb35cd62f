"""Influence per identity: reach, frequency and mentions, flagged as influencer,
ambassador (influential and positive) or detractor (influential and negative).

    score = reach_weight * ln(1 + engagement)      # followers, helpful votes, comments
          + frequency_weight * ln(1 + interactions)
          + mentions_weight * ln(1 + brand mentions)

Weights and thresholds are ``[identity.influence]`` in the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...host.config import INFLUENCE_DEFAULTS as DEFAULTS


@dataclass
class Influence:
    score: float
    flags: list[str]


def influence(count: int, engagement: int, mentions: int, sentiment: float | None, settings: dict[str, float] | None = None) -> Influence:
    """The score and flags of one identity."""
    s = {**DEFAULTS, **(settings or {})}
    score = s["reach_weight"] * math.log1p(max(0, engagement)) + s["frequency_weight"] * math.log1p(max(0, count)) + s["mentions_weight"] * math.log1p(max(0, mentions))
    flags: list[str] = []
    if score >= s["influencer_score"]:
        flags.append("influencer")
        if sentiment is not None and sentiment >= s["ambassador_sentiment"]:
            flags.append("ambassador")
        elif sentiment is not None and sentiment <= s["detractor_sentiment"]:
            flags.append("detractor")
    return Influence(round(score, 3), flags)
