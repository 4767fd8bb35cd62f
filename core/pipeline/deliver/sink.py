"""One sink instance in a run: its lock, then its backlog delivered here or split
over worker processes.

A sink is delivered by one process at a time (its ``sink:NAME`` lock). A sink
another run is delivering is waited for (``--wait``) or skipped: its backlog
stays in the ledger for the next run. A sink that allows it
(``Sink.parallel``), alone in a run with process workers and a backlog worth
it (2,000 records a worker), is delivered by several workers, each over its
own range of interaction ids (uuid5 ids are uniform) with a sink instance, a
``context.part`` and ledger writes of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from ...contract.base import Context
from ...host.logs import bound
from ...store import Store
from .. import workers
from ..progress import bar
from ..report import DELIVERED_COUNTS, SinkReport, describe
from .loop import SinkSetup, deliver

log = logging.getLogger("crmsync.pipeline.deliver")


def deliver_sink(setup: SinkSetup, store: Store, context: Context, rep: SinkReport, *, wait: bool, max_parts: int, show_progress: bool, stop: threading.Event | None = None) -> None:
    """Deliver ``setup``'s backlog under its lock; ``max_parts`` > 1 allows that many
    worker processes. The outcome, and the backlog left, go into ``rep``."""
    with bound(sink=setup.name):
        _deliver_sink(setup, store, context, rep, wait=wait, max_parts=max_parts, show_progress=show_progress, stop=stop)


def _deliver_sink(setup: SinkSetup, store: Store, context: Context, rep: SinkReport, *, wait: bool, max_parts: int, show_progress: bool, stop: threading.Event | None) -> None:
    lock = f"sink:{setup.name}"
    if wait:
        store.locks.acquire_locks(context.run_id, [lock], wait=True)
    elif not store.locks.try_lock(context.run_id, lock):
        info = store.locks.holder(lock)
        who = f"run {info.get('run_id')} (pid {info.get('pid')})" if info else "another run"
        rep.status = "locked"
        rep.backlog = store.ledger.backlog(setup.name, setup.sources)
        rep.notes.append(f"skipped: {who} is delivering this sink; its backlog goes with the next run (or use --wait)")
        log.warning("sink %s is locked by %s; skipped", setup.name, who)
        return
    t0 = time.monotonic()
    try:
        total = store.ledger.backlog(setup.name, setup.sources)
        parts = max(1, min(max_parts, 16, total // 2000))
        if parts > 1:
            deliver_in_parts(setup, store, context, rep, total=total, parts=parts, show_progress=show_progress)
        else:
            deliver(setup, store, context, rep, bar(f"sink {setup.name}", show_progress, 0, total=total), stop=stop)
    except Exception as exc:  # noqa: BLE001 - one sink never breaks another
        rep.status = "failed"
        rep.errors.append(describe(exc))
        log.error("sink %s failed: %s", setup.name, describe(exc))
    finally:
        rep.duration = round(time.monotonic() - t0, 3)
        try:
            rep.backlog = store.ledger.backlog(setup.name, setup.sources)
        except Exception:  # noqa: BLE001
            rep.backlog = -1
        store.locks.release(lock)


def deliver_in_parts(setup: SinkSetup, store: Store, context: Context, rep: SinkReport, *, total: int, parts: int, show_progress: bool) -> None:
    """Deliver from ``parts`` forked workers. A worker that dies fails the sink;
    what it confirmed is in the ledger, the rest goes with the next run."""
    ctx = workers.prepare_fork()
    bounds: list[str | None] = ["", *(f"{16 * k // parts:x}" for k in range(1, parts)), None]
    progress = bar(f"sink {setup.name}", show_progress, 0, total=total)
    reports = {k: SinkReport(setup.name, setup.plugin) for k in range(parts)}

    def job_for(k: int) -> workers.Job:
        def job(channel: workers.Channel) -> SinkReport:
            store.after_fork()
            mine = SinkReport(setup.name, setup.plugin)
            counts = lambda r: channel.send(("committed", {key: getattr(r, key) for key in DELIVERED_COUNTS}))  # noqa: E731
            after = bounds[k] or ""
            deliver(setup, store, dataclasses.replace(context, part=k), mine, bar("", show_progress, 0, channel=channel), after=after, before=bounds[k + 1], on_recorded=counts)
            return mine

        return job

    def on_message(k: int, msg: tuple[Any, ...]) -> None:
        if msg[0] == "progress":
            progress.update(msg[1])
        elif msg[0] == "committed":  # counts so far, kept if the worker dies
            reports[k].__dict__.update(msg[1])

    def on_exit(k: int, proc: Any, result: tuple[Any] | None) -> None:
        if result is not None and result[0] is not None:
            reports[k] = result[0]
            return
        how = workers.how_it_ended(proc)
        reports[k].status = "failed"
        reports[k].errors.append(f"the worker process delivering part {k + 1} of {parts} died ({how}; out of memory?); what it confirmed is kept and the next run delivers the rest")
        log.error("sink %s: a worker process died (%s)", setup.name, how)

    try:
        workers.run_all(ctx, [(k, job_for(k), f"crmsync-sink-{setup.name}-{k}") for k in range(parts)], parts, on_message, on_exit)
    finally:
        progress.close()
    for part in reports.values():
        rep.add(part)
    rep.status = "failed" if any(p.status != "ok" for p in reports.values()) else "ok"
    rep.notes.append(f"delivered by {parts} worker processes")
