"""Commit: a source's batch into the store, in one transaction (records, the
people in them, quarantined inputs and the bookmark after them), counted in
the source's report. A dry run classifies the batch instead (new, edit or
unchanged) and writes nothing."""

from __future__ import annotations

import logging
from typing import Any

from ..host.failpoints import failpoint
from ..store.interactions import Interactions
from .read import Batch
from .report import COMMITTED_COUNTS, SourceReport

log = logging.getLogger("crmsync.pipeline.commit")


def commit(interactions: Interactions, batch: Batch, rep: SourceReport, run_id: str | None) -> None:
    """Write ``batch`` of source ``rep.name``; add what it changed to ``rep``."""
    failpoint("source.before_commit")
    res = interactions.write_batch(rep.name, batch.records, identities_=batch.people, rejected=batch.rejected, bookmark=batch.checkpoint, run_id=run_id,
                                   takedowns=[t.interaction_id for t in batch.takedowns])
    failpoint("source.after_commit")
    rep.new += res.new
    rep.updated += res.updated
    rep.unchanged += res.unchanged
    rep.identities += res.identities
    rep.quarantined += res.quarantined
    rep.deleted += res.deleted
    for r in batch.rejected:
        log.warning("source %s: quarantined %s: %s", rep.name, r.ref, r.reason)


def committed_message(rep: SourceReport, identity_counts: dict[str, int]) -> tuple[Any, ...]:
    """What a worker tells the run's process after a commit: the counts so far,
    kept if the worker dies before it sends its report."""
    return ("committed", {k: getattr(rep, k) for k in COMMITTED_COUNTS}, dict(identity_counts))


def classify(interactions: Interactions, batch: Batch, rep: SourceReport, changed: dict[str, str]) -> None:
    """A dry run's commit: count ``batch`` as new, updated or unchanged, keeping
    only ``id -> status`` of the changed ones in ``changed`` (a dry run's memory
    must not grow with the input)."""
    for iid, status in interactions.classify(batch.records).items():
        if status == "new":
            rep.new += 1
        elif status == "edit":
            rep.updated += 1
        else:
            rep.unchanged += 1
        if status != "same":
            changed[iid] = status
    rep.quarantined += len(batch.rejected)
