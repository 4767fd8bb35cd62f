"""``crmsync run --dry-run``: what each sink would do with its backlog.

The runner counts creates and updates; a sink that implements
:meth:`crmsync.Sink.plan` also says what it would write in the target's
terms (notes, tasks, contacts to upsert, associations), from the records and
its config alone: nothing is sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ...contract.base import Context, Sink
from .pages import page_deliveries


def sink_plan(store: Any, cls: type[Sink], name: str, options: dict[str, Any], context: Context, sources: Sequence[str] | None, *, page: int = 1000) -> list[str]:
    """Lines describing what sink ``name`` would do with its stored backlog."""
    if cls.plan is Sink.plan:
        return []
    sink = cls(name, options, context)
    totals: Counter[str] = Counter()
    profiles: dict[str, Any] = {}
    after = ""
    while True:
        pending = store.pending(name, sources=sources, after=after, limit=page)
        if not pending:
            break
        batch = page_deliveries(store, pending, profiles)
        totals.update(sink.plan(batch))
        after = pending[-1].interaction.interaction_id
    return [f"plan: {n} {what}" for what, n in totals.items() if n]


__all__ = ["sink_plan"]
