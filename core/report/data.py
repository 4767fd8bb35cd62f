"""The report's numbers, read from the store (aggregates in SQL where they can be)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select

from ..contract.schema import Identity
from ..store import Store
from ..store.tables import identities, interactions


def _week(when: datetime | None) -> str | None:
    if when is None:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def report_data(store: Store, *, now: datetime | None = None, top: int = 10, recent: int = 3) -> dict[str, Any]:
    """Everything the report shows, as plain data (JSON-able)."""
    now = now or datetime.now(UTC)
    counts = store.counts()
    queue = store.interactions.response_queue(now=now, limit=50)
    # titles and links of the queue's items (the store keeps them in the record)
    wanted = [item["interaction_id"] for item in queue["next"]]
    details: dict[str, dict[str, Any]] = {}
    with store.db.connect() as conn:
        for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500)):
            for iid, record in conn.execute(select(interactions.c.interaction_id, interactions.c.record).where(interactions.c.interaction_id.in_(chunk))):
                rec = json.loads(record)
                details[iid] = {"title": rec.get("title") or (rec.get("body_text") or "")[:120], "url": rec.get("url"), "author": (rec.get("author") or {}).get("name")}
    for item in queue["next"]:
        item.update(details.get(item["interaction_id"], {}))

    # people: flags and influence live in the identity records
    people: dict[str, list[dict[str, Any]]] = {"influencer": [], "ambassador": [], "detractor": []}
    stats = {a: (n, eng, men, sent) for a, n, eng, men, sent in store.interactions.author_stats()}
    with store.db.connect() as conn:
        for ident_id, record in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.record.like('%"flags":["%'))):
            person = Identity.model_validate_json(record)
            n, eng, men, sent = stats.get(ident_id, (0, 0, 0, None))
            for flag in person.flags:
                if flag in people:
                    people[flag].append({"identity_id": ident_id, "name": person.name or (person.emails[0] if person.emails else ident_id[:8]), "influence": person.influence,
                                         "interactions": n, "engagement": eng, "mentions": men, "sentiment": round(sent, 3) if sent is not None else None, "crm": bool(person.crm_ids)})
    for flag, rows in people.items():
        rows.sort(key=lambda r: (-(r["influence"] or 0), -r["interactions"]))
        del rows[top:]
        with store.db.connect() as conn:
            for row in rows:
                q = select(interactions.c.record).where(interactions.c.author_id == row["identity_id"]).order_by(interactions.c.published.desc()).limit(recent)
                row["recent"] = [_brief(json.loads(r[0])) for r in conn.execute(q)]

    # sentiment over time per source, and per brand term; listening volume per term
    by_source: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_brand: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    volume: dict[str, Counter[str]] = defaultdict(Counter)
    with store.db.connect() as conn:
        q = select(interactions.c.source, interactions.c.published, interactions.c.sentiment_score).where(interactions.c.published.is_not(None))
        for source, published, score in conn.execute(q):
            week = _week(published)
            if score is not None:
                by_source[source][week].append(score)
        q = select(interactions.c.published, interactions.c.sentiment_score, interactions.c.record).where(and_(interactions.c.mention_count > 0, interactions.c.published.is_not(None)))
        for published, score, record in conn.execute(q):
            week = _week(published)
            for term in {m for m in json.loads(record).get("mentions") or [] if isinstance(m, str)}:
                volume[term][week] += 1
                if score is not None:
                    by_brand[term][week].append(score)

    def mean_series(groups: dict[str, dict[str, list[float]]]) -> dict[str, list[tuple[str, float, int]]]:
        return {name: [(w, round(sum(v) / len(v), 3), len(v)) for w, v in sorted(weeks.items())] for name, weeks in sorted(groups.items())}

    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "interactions": counts["interactions"],
        "interactions_total": sum(counts["interactions"].values()),
        "identities": counts["identities"],
        "quarantine_open": counts["quarantine_open"],
        "response_queue": queue,
        "people": people,
        "sentiment_by_source": mean_series(by_source),
        "sentiment_by_brand": mean_series(by_brand),
        "volume_by_term": {term: sorted(weeks.items()) for term, weeks in sorted(volume.items())},
    }


def _brief(rec: dict[str, Any]) -> dict[str, Any]:
    sentiment = rec.get("sentiment") or {}
    return {"title": rec.get("title") or (rec.get("body_text") or "")[:120], "url": rec.get("url"), "published": rec.get("published"), "source": rec.get("source"), "sentiment": sentiment.get("label")}


__all__ = ["report_data"]
