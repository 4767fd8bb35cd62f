"""crmsync's built-in enrichers: sentiment, language, mentions and response triage.

Each is an ordinary enricher plugin (public API only); configure the ones you
want under ``[enrichers.NAME]`` and switch one off with ``enabled = false``.
"""

from __future__ import annotations

import crmsync

from .enrichers import LanguageEnricher, MentionsEnricher, SentimentEnricher, TriageEnricher

__all__ = ["LanguageEnricher", "MentionsEnricher", "SentimentEnricher", "TriageEnricher"]


@crmsync.hookimpl
def register_enrichers(register):  # noqa: ANN001, ANN201
    for cls in (SentimentEnricher, LanguageEnricher, MentionsEnricher, TriageEnricher):
        register(cls)
