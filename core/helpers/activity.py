"""The text of a CRM activity (note, task, engagement) for one interaction.

CRM sinks show an interaction as a note or a task: a subject line and a
plain-text body that carries what the CRM has no field for (the link back,
the rating, the sentiment, the thread). :func:`activity_text` builds both the
same way for every sink, so a note in Tryton and a task in Salesforce read
alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..contract.schema import Identity, Interaction
from ..contract.text import truncate

TRUNCATION_MARKER = "…[truncated]"


@dataclass(frozen=True)
class Activity:
    """``subject`` (one line) and ``body`` (plain text, lines separated by ``\\n``)."""

    subject: str
    body: str
    truncated: bool = False


def activity_text(interaction: Interaction, author: Identity | None = None, *, max_subject: int | None = None, max_body: int | None = None) -> Activity:
    """Subject and body of the CRM activity for ``interaction``.

    The body is the author's own text, then a footer: link, author, rating,
    sentiment, priority, thread. ``author`` is the profile the store keeps
    (defaults to the interaction's author). Past ``max_subject`` /
    ``max_body`` characters the text is cut at the end of the *text* (the
    footer is kept whole) and marked ``…[truncated]``; ``truncated`` says so.
    """
    i = interaction
    a = author or i.author
    subject = " ".join((i.title or f"{i.kind.capitalize()} via {i.source}").split())
    footer: list[str] = []
    if i.url:
        footer.append(f"Link: {i.url}")
    if a is not None:
        who = a.name or (a.emails[0] if a.emails else None) or (a.handles[0] if a.handles else None)
        if who:
            footer.append(f"Author: {who}" + (f" <{a.emails[0]}>" if a.emails and a.name else ""))
    if i.published:
        footer.append(f"Published: {i.published.isoformat()}")
    if i.rating:
        footer.append(f"Rating: {i.rating.value:g}/{i.rating.best:g}")
    if i.sentiment:
        footer.append(f"Sentiment: {i.sentiment.label} ({i.sentiment.score:+.2f})")
    if i.priority:
        footer.append(f"Priority: {i.priority}" + (f", respond by {i.due_at.isoformat()}" if i.due_at else ""))
    if i.thread_id:
        footer.append(f"Thread: {i.thread_id}")
    footer.append(f"Source: {i.source} ({i.channel}/{i.kind})")
    tail = "\n\n" + "\n".join(footer)
    text = i.body_text or i.summary or ""
    cut = False
    if max_subject is not None and len(subject) > max_subject:
        subject, cut = truncate(subject, max_subject, TRUNCATION_MARKER)[0] or "", True
    if max_body is not None and len(text) + len(tail) > max_body:
        room = max(len(TRUNCATION_MARKER), max_body - len(tail))
        text, cut = truncate(text, room, TRUNCATION_MARKER)[0] or "", True
    return Activity(subject, text + tail, cut)


#: the fields :func:`activity_values` gives, for a sink's "extra fields" option
ACTIVITY_FIELDS = (
    "source", "channel", "kind", "url", "title", "language", "sentiment_label", "sentiment_score", "rating_normalized",
    "priority", "needs_response", "due_at", "published", "thread_id", "author_name", "author_email",
)


def _z(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def activity_values(interaction: Interaction, author: Identity | None = None) -> dict[str, Any]:
    """The flat values a CRM sink's field mapping may name (:data:`ACTIVITY_FIELDS`):
    strings, numbers, booleans or ``None``; times as ISO 8601 UTC with ``Z``."""
    i = interaction
    a = author or i.author
    return {
        "source": i.source, "channel": i.channel, "kind": i.kind, "url": i.url, "title": i.title, "language": i.language,
        "sentiment_label": i.sentiment.label if i.sentiment else None, "sentiment_score": i.sentiment.score if i.sentiment else None,
        "rating_normalized": i.rating.normalized if i.rating else None, "priority": i.priority, "needs_response": i.needs_response,
        "due_at": _z(i.due_at), "published": _z(i.published), "thread_id": i.thread_id,
        "author_name": a.name if a else None, "author_email": a.emails[0] if a and a.emails else None,
    }


__all__ = ["ACTIVITY_FIELDS", "TRUNCATION_MARKER", "Activity", "activity_text", "activity_values"]
