"""Read: a source's stream, checked and cut into batches for the next stages.

A source yields :class:`~crmsync.Interaction`, :class:`~crmsync.Identity`,
:class:`~crmsync.Rejected` and :class:`~crmsync.Checkpoint` items. They are
gathered into :class:`Batch` es of ``batch_size`` and handed to ``commit``
(the runner connects it to resolve, enrich and the store). A checkpoint
closes over everything before it, so a batch's bookmark never runs ahead of
its records. When the stream fails, what was read before the failure is
still handed on, and a transient failure restarts the source from its last
stored bookmark (``retry_attempts``).

:func:`read_in_workers` reads several sources in forked worker processes.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..contract.base import Checkpoint, Rejected, Source, Takedown
from ..contract.errors import CrmsyncError, FatalError, SkippableError
from ..contract.schema import Identity, Interaction
from ..helpers.retry import retrying
from ..store.bookmarks import Bookmarks
from . import workers
from .progress import Bar, bar, set_total
from .report import COMMITTED_COUNTS, SourceReport, add_counts, describe

log = logging.getLogger("crmsync.pipeline.read")


@dataclass
class Batch:
    """What a source yielded between two hand-offs."""

    records: list[Interaction] = field(default_factory=list)
    people: list[Identity] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: interactions the source says are gone upstream
    takedowns: list[Takedown] = field(default_factory=list)
    #: the source's state after every item of this batch (and the ones before it)
    checkpoint: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.records) + len(self.people) + len(self.rejected) + len(self.takedowns)

    @property
    def empty(self) -> bool:
        return not len(self) and self.checkpoint is None


def read_batches(name: str, stream: Iterable[Any], batch_size: int, rep: SourceReport, progress: Bar, commit: Callable[[Batch], None], stop: threading.Event | None = None,
                 expected: Callable[[], int | None] | None = None) -> None:
    """Hand ``stream`` (of source instance ``name``) to ``commit`` in batches, counting
    what was read in ``rep``. An item of the wrong type, or an interaction of
    another source, is a :class:`FatalError` (a plugin bug). When ``stop`` is set
    (Ctrl-C), what was read is committed and reading ends."""
    batch = Batch()
    total = None
    try:
        for item in stream:
            if expected is not None and (known := expected()) != total and known is not None:
                total = known  # the source said how many records are coming: the bar shows a total
                set_total(progress, total)
            if stop is not None and stop.is_set():
                rep.notes.append("stopped by Ctrl-C: what was read is stored; the next run goes on from the last bookmark")
                break
            if isinstance(item, Interaction):
                if item.source != name:
                    msg = f"yielded an interaction of source {item.source!r}; build records with Source.interaction()"
                    raise FatalError(msg, plugin=name)
                batch.records.append(item)
                rep.read += 1
                progress.update(1)
            elif isinstance(item, Identity):
                batch.people.append(item)
                rep.read += 1
                progress.update(1)
            elif isinstance(item, Rejected):
                batch.rejected.append(item)
            elif isinstance(item, Takedown):
                batch.takedowns.append(item)
            elif isinstance(item, Checkpoint):
                # every record before this checkpoint is in the batch or committed
                batch.checkpoint = item.state
            else:
                msg = f"yielded {type(item).__name__}; a source yields Interaction, Identity, Rejected, Takedown or Checkpoint"
                raise FatalError(msg, plugin=name)
            if len(batch) >= batch_size:
                commit(batch)
                batch = Batch()
    except BaseException:
        # keep what was read before the failure (and the last checkpoint before it)
        if not batch.empty:
            commit(batch)
        raise
    if not batch.empty:
        commit(batch)


@dataclass
class ReadPolicy:
    """How a source is read: batch size, retries, a full refresh, a dry run."""

    batch_size: int
    attempts: int
    max_wait: float
    full_refresh: bool = False
    dry_run: bool = False
    #: set on Ctrl-C: sources in threads end at the next record
    stop: threading.Event | None = None


def read_source(make_source: Callable[[], Source], rep: SourceReport, bookmarks: Bookmarks, policy: ReadPolicy, progress: Bar, commit: Callable[[Batch], None]) -> None:
    """Read one source instance from its stored bookmark (none with a full refresh)
    into ``commit``; its outcome goes into ``rep``. Never raises: one source never
    breaks the run."""
    t0 = time.monotonic()
    source: Source | None = None
    name = rep.name
    try:
        source = make_source()
        if policy.full_refresh and not policy.dry_run:
            bookmarks.reset(name)
        state = None if policy.full_refresh else bookmarks.get(name)
        for attempt in retrying(attempts=policy.attempts, max_wait=policy.max_wait, name=f"source {name}"):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    rep.restarts += 1
                    state = None if (policy.full_refresh and rep.read == 0) else bookmarks.get(name)
                read_batches(name, source.read(state), policy.batch_size, rep, progress, commit, policy.stop, expected=lambda: source.expected)
        rep.status = "partial" if source.errors else "ok"
    except SkippableError as exc:
        rep.status = "failed"
        rep.errors.append(f"stopped at bad input {exc.ref or ''}: {exc}")
        if not policy.dry_run:
            commit(Batch(rejected=[Rejected(exc.ref or name, str(exc), _raw(exc.raw), "SkippableError")]))
    except (CrmsyncError, Exception) as exc:  # noqa: BLE001 - one source never breaks the run
        rep.status = "failed"
        rep.errors.append(describe(exc))
        log.error("source %s failed: %s", name, describe(exc))
        if not isinstance(exc, CrmsyncError):
            log.debug("".join(traceback.format_exception(exc)))
    finally:
        if source is not None:
            rep.errors.extend(e for e in source.errors if e not in rep.errors)
            rep.notes.extend(n for n in source.notes if n not in rep.notes)
        rep.duration = round(time.monotonic() - t0, 3)
        progress.close()


def read_in_workers(reports: Sequence[tuple[SourceReport, int, workers.Job]], at_once: int, show_progress: bool, identity_counts: dict[str, int]) -> None:
    """Each source in a forked worker process of its own, ``at_once`` at a time
    (parsing and enrichment are CPU-bound: threads would share one core).
    ``reports`` holds each source's report, its progress bar's position and the job
    that reads it; a job returns ``(report, identity counts)``. A worker that dies
    (out of memory, a crashing extension) fails its source only: what it committed
    is kept and counted."""
    ctx = workers.prepare_fork()
    by_name = {rep.name: (rep, pos) for rep, pos, _job in reports}
    committed: dict[str, dict[str, int]] = {}  # source -> identity counts committed so far
    bars: dict[str, Bar] = {}

    def on_start(name: str) -> None:
        rep, pos = by_name[name]
        bars[name] = bar(f"source {name}", show_progress, pos)

    def on_message(name: str, msg: tuple[Any, ...]) -> None:
        if msg[0] == "progress":  # the worker's progress goes to this process's bars
            bars[name].update(msg[1])
        elif msg[0] == "total":
            set_total(bars[name], msg[1])
        elif msg[0] == "committed":
            by_name[name][0].__dict__.update(msg[1])
            committed[name] = msg[2]

    def on_exit(name: str, proc: Any, result: tuple[Any] | None) -> None:
        bars.pop(name).close()
        rep = by_name[name][0]
        counts = committed.pop(name, {})
        if result is None or result[0] is None:
            how = workers.how_it_ended(proc)
            rep.status = "failed"
            rep.errors.append(f"the worker process reading this source died ({how}; out of memory?); what it committed is kept (counted here) and the next run resumes")
            log.error("source %s: its worker process died (%s)", name, how)
        else:
            done, counts = result[0]
            rep.__dict__.update(done.__dict__)
        add_counts(identity_counts, counts)

    try:
        workers.run_all(ctx, [(rep.name, job, f"crmsync-source-{rep.name}") for rep, _pos, job in reports], at_once, on_message, on_exit, on_start)
    finally:
        for b in bars.values():
            b.close()


def _raw(raw: bytes | str | None) -> bytes | None:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return raw


__all__ = ["COMMITTED_COUNTS", "Batch", "ReadPolicy", "read_batches", "read_in_workers", "read_source"]
