"""The delivery loop: how one sink instance gets its backlog, exactly once.

This is everything a sink author needs to know about when crmsync calls a
:class:`~crmsync.Sink`'s methods:

1. ``open()``; then pages of the backlog, in interaction-id order: the
   versions the ledger says the sink lacks (``store.ledger.pending``), at
   most ``min(batch_size, flush_every)`` at a time, as
   :class:`~crmsync.Delivery` objects (operation create or update, the
   external id the sink reported before, the author's stored profile).
2. ``write(batch)`` per page, retried on :class:`~crmsync.RetriableError`
   (``retry_attempts``, backing off up to ``retry_max_wait``). The receipts it
   returns are checked against what it was handed (``receipts.ReceiptCheck``)
   and written to the ledger; a receipt means "durable, never send again".
   A ``RetriableError(receipts=...)`` reports what landed before the failure:
   those are recorded and the retry gets the rest only
   (``receipts.PartialWrites``).
3. ``flush()`` every ``flush_every`` records and at the end, for sinks that
   confirm later (files, bulk jobs); its receipts go to the ledger the same way.
4. Records the sink reported with ``reject()`` go to the quarantine as
   ``sink:NAME`` and stay in the backlog (``rejections.RejectionLog``); a later
   receipt closes their entry.
5. On failure: receipts the error carries are recorded, then ``abort()``;
   always ``close()``. What has no receipt is the next run's backlog.

A crash anywhere leaves the ledger behind the target, never ahead of it, and
sinks upsert by interaction id: a re-run re-sends, never loses, never doubles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...contract.base import Context, Deletion, Delivery, Receipt, Sink
from ...contract.errors import CrmsyncError
from ...contract.schema import Identity
from ...helpers.retry import retrying
from ...host.failpoints import failpoint
from ...store import Store
from ..progress import Bar
from ..report import SinkReport, describe
from .pages import page_deliveries
from .receipts import PartialWrites, ReceiptCheck
from .rejections import RejectionLog

log = logging.getLogger("crmsync.pipeline.deliver")


@dataclass
class SinkSetup:
    """One configured sink instance, ready to deliver."""

    name: str
    plugin: str
    cls: type[Sink]
    #: its options, secrets resolved (called where a failure fails the sink only)
    options: Callable[[], dict[str, Any]]
    #: the source instances it takes (None: all)
    sources: list[str] | None
    attempts: int
    max_wait: float


def deliver(setup: SinkSetup, store: Store, context: Context, rep: SinkReport, progress: Bar, *, after: str = "", before: str | None = None,
            on_recorded: Callable[[SinkReport], None] | None = None, stop: threading.Event | None = None) -> None:
    """Deliver the backlog of ``setup`` (the ids after ``after`` and below ``before``)
    in this process; the outcome goes into ``rep``. ``on_recorded`` follows each
    ledger write. Never raises: one sink never breaks another."""
    name = setup.name
    sink: Sink | None = None
    rejections: RejectionLog | None = None
    check: ReceiptCheck | None = None

    def record(receipts: Iterable[Receipt] | None) -> None:
        receipts = list(receipts or [])
        if not receipts:
            return
        store.ledger.record(name, receipts, context.run_id)
        failpoint("sink.after_ledger")
        if rejections is not None:
            rejections.resolve(receipts)
        for r in receipts:
            # what it was handed as (the check holds that until the flush confirms it)
            op = check.operation(r.interaction_id) if check is not None else None
            if op is None:
                op = "update" if r.version > 1 else "create"
            if op == "update":
                rep.updated += 1
            else:
                rep.created += 1
        rep.delivered += len(receipts)
        if on_recorded is not None:
            on_recorded(rep)

    try:
        sink = setup.cls(name, setup.options(), context)
        sink.open()
        rejections = RejectionLog(store.quarantine, name, context.run_id)
        check = ReceiptCheck()
        # instance attributes: a sink may size its batches from its config in open()
        page_size = min(sink.batch_size, sink.flush_every or sink.batch_size)
        since_flush = 0
        profiles: dict[str, Identity] = {}

        def retried(fn: Callable[..., Any]) -> Any:
            return retrying(name=f"sink {name}", attempts=setup.attempts, max_wait=setup.max_wait)(fn)

        def flush() -> None:
            receipts = check.keep(retried(sink.flush) or ())
            failpoint("sink.after_flush")
            drain_rejections(sink, rejections, rep, receipts)
            record(receipts)
            check.flushed()

        try:
            while True:
                if stop is not None and stop.is_set():  # Ctrl-C: what was written is flushed and recorded
                    rep.notes.append("stopped by Ctrl-C: the rest of the backlog goes with the next run")
                    break
                page = store.ledger.pending(name, sources=setup.sources, after=after, before=before, limit=page_size)
                if not page:
                    break
                batch = page_deliveries(store.identities, page, profiles)
                if any(d.interaction.deleted for d in batch):  # taken down upstream: deleted, not written
                    gone = [d for d in batch if d.interaction.deleted]
                    batch = [d for d in batch if not d.interaction.deleted]
                    check.handed(gone)
                    record(check.keep(take_down(sink, gone, rep)))
                check.handed(batch)
                attempt = PartialWrites(sink.write, batch, lambda done: record(check.keep(done)))
                receipts = retried(attempt)
                failpoint("sink.after_write")
                if receipts is not None:
                    receipts = check.keep(receipts)
                drain_rejections(sink, rejections, rep, receipts or ())
                if receipts:
                    record(receipts)
                since_flush += len(batch)
                after = page[-1].interaction.interaction_id
                progress.update(len(batch))
                del page, batch  # not held while the next page is read: one page at a time in memory
                if sink.flush_every and since_flush >= sink.flush_every:
                    flush()
                    since_flush = 0
            flush()
        finally:
            progress.close()
        rep.status = "ok"
        problem = check.problem()
        if problem:
            rep.status = "partial"
            rep.errors.append(problem)
            log.error("sink %s: %s", name, problem)
    except (CrmsyncError, Exception) as exc:  # noqa: BLE001 - one sink never breaks another
        rep.status = "failed"
        rep.errors.append(describe(exc))
        log.error("sink %s failed: %s", name, describe(exc))
        carried = getattr(exc, "receipts", None)
        if sink is not None and rejections is not None:
            try:
                drain_rejections(sink, rejections, rep, carried or ())
            except Exception as rej_exc:  # noqa: BLE001
                rep.errors.append(f"recording rejected records failed: {describe(rej_exc)}")
        if carried and check is not None:
            carried = exc.receipts = check.keep(carried)
        if carried:  # durable before the failure: never sent twice
            try:
                record(carried)
            except Exception as ledger_exc:  # noqa: BLE001
                rep.errors.append(f"recording {len(carried)} confirmed receipt(s) failed: {describe(ledger_exc)}")
        if sink is not None:
            try:
                sink.abort()
            except Exception as abort_exc:  # noqa: BLE001
                rep.errors.append(f"abort failed: {describe(abort_exc)}")
    finally:
        if sink is not None:
            rep.notes.extend(sink.notes)
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                rep.errors.append(f"close failed: {describe(exc)}")


def take_down(sink: Sink, gone: list[Delivery], rep: SinkReport) -> list[Receipt]:
    """Delete from the target what it holds of interactions taken down upstream; their
    new (deleted) version is then the sink's, so they are not handed again. A sink that
    cannot delete gets a note naming them."""
    held = [Deletion(d.interaction.interaction_id, d.version, d.external_id, "takedown") for d in gone if d.operation == "update"]
    if held:
        try:
            answered = sink.delete(held)
            done = {dl.interaction_id for dl in held} if answered is None else set(answered)
            rep.deleted += len(done)
        except NotImplementedError:
            rep.notes.append(f"{len(held)} record(s) taken down at their source are still in the target (this sink cannot delete): {', '.join(d.external_id or d.interaction_id for d in held[:20])}")
    return [d.receipt() for d in gone]


def drain_rejections(sink: Sink, rejections: RejectionLog, rep: SinkReport, receipts: Iterable[Receipt]) -> None:
    """Quarantine what ``sink`` reported as not written since the last call (a record
    rejected by an attempt that a retry then wrote has a receipt: not counted)."""
    if not sink.rejections:
        return
    written = {r.interaction_id for r in receipts}
    pending, sink.rejections = [r for r in sink.rejections if r.interaction_id not in written], []
    counts = rejections.record(pending)
    rep.rejected += counts["rejected"]
    rep.invalid += counts["invalid"]
    for r in pending[:3]:
        log.warning("sink %s: %s %s: %s", rep.name, r.kind, r.interaction_id, r.reason)


__all__ = ["SinkSetup", "deliver", "drain_rejections"]
