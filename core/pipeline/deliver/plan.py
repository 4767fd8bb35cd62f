"""``crmsync run --dry-run``: what each sink would do with its backlog.

:func:`dry_run` counts creates and updates: the stored backlog plus what this
dry run's sources would change. A sink that implements
:meth:`crmsync.Sink.plan` also says what it would write in the target's
terms (notes, tasks, contacts to upsert, associations), from the records and
its config alone (:func:`sink_plan`): nothing is sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ...contract.base import Context, Sink
from ...store import Store
from ..report import SinkReport
from .loop import SinkSetup
from .pages import page_deliveries


def dry_run(setup: SinkSetup, store: Store, rep: SinkReport, changed: dict[str, dict[str, str]], context: Context) -> None:
    """Count what the sink would create or update, writing nothing. ``changed`` is
    what the dry run's sources would change (source -> interaction id -> status)."""
    ledger = store.ledger.entries(setup.name)
    seen: set[str] = set()
    after = ""
    while True:
        page = store.ledger.pending(setup.name, sources=setup.sources, after=after, limit=1000)
        if not page:
            break
        for p in page:
            seen.add(p.interaction.interaction_id)
            if p.delivered_version is None:
                rep.created += 1
            else:
                rep.updated += 1
        after = page[-1].interaction.interaction_id
    for src, ids in changed.items():
        if setup.sources is not None and src not in setup.sources:
            continue
        for iid in ids:
            if iid in seen:
                continue
            seen.add(iid)
            if iid in ledger:
                rep.updated += 1
            else:
                rep.created += 1
    rep.backlog = rep.created + rep.updated
    rep.status = "dry-run"
    rep.notes.extend(sink_plan(store, setup.cls, setup.name, setup.options(), context, setup.sources))


def sink_plan(store: Store, cls: type[Sink], name: str, options: dict[str, Any], context: Context, sources: Sequence[str] | None, *, page: int = 1000) -> list[str]:
    """Lines describing what sink ``name`` would do with its stored backlog."""
    if cls.plan is Sink.plan:
        return []
    sink = cls(name, options, context)
    totals: Counter[str] = Counter()
    profiles: dict[str, Any] = {}
    after = ""
    while True:
        pending = store.ledger.pending(name, sources=sources, after=after, limit=page)
        if not pending:
            break
        batch = page_deliveries(store.identities, pending, profiles)
        totals.update(sink.plan(batch))
        after = pending[-1].interaction.interaction_id
    return [f"plan: {n} {what}" for what, n in totals.items() if n]


__all__ = ["dry_run", "sink_plan"]
