"""The run: sources into the store, the store into each sink, exactly once.

:class:`Runner` builds the stages from the config and connects them; it reads
top to bottom as the data path (docs/architecture.md draws it):

1. **read** each source (``read``), the CRM's own records first: identity
   resolution needs them. Sources run side by side, in threads or forked
   worker processes (``workers``); one source never breaks another.
2. Each batch goes through **resolve** (``resolve``: authors linked to
   contacts), **enrich** (``enrich``: the enricher chain) and **commit**
   (``commit``: one transaction with the source's bookmark, so the bookmark
   never runs ahead of the data).
3. After the sources: relink older records to changed contacts and score
   authors (``resolve``).
4. **deliver** to each sink what its ledger says it lacks (``deliver``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ..contract.base import Context, Source
from ..host.config import Config, InstanceConfig
from ..host.logs import bound, set_run
from ..host.plugins import PluginHost
from ..store import Store
from . import commit as _commit
from .deliver import SinkSetup, deliver_sink, dry_run
from .enrich import Enrichment, make_enrichers
from .read import Batch, ReadPolicy, read_in_workers, read_source
from .report import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, RunReport, SinkReport, SourceReport
from .preflight import selected
from .privacy import Suppression
from .progress import bar
from .resolve import Resolution, Settings

Pair = tuple[InstanceConfig, SourceReport]

log = logging.getLogger("crmsync.pipeline.run")


class Runner:
    """Runs configured sources and sinks over one store."""

    def __init__(self, config: Config, store: Store, host: PluginHost, *, progress: bool = False) -> None:
        self.config = config
        self.store = store
        self.host = host
        self.progress = progress
        self.resolution = Resolution(
            store.identities, store.interactions,
            Settings(config.identity_enabled, config.auto_link_threshold, config.fuzzy_threshold, config.influence, config.batch_size),
            self._matchers,
        )
        #: set on Ctrl-C: threads stop at their next record or page
        self.stop = threading.Event()
        self.suppression = Suppression.load(store, config)

    def select(self, kind: str, names: Sequence[str] | None) -> list[InstanceConfig]:
        """The enabled instances of ``kind``, or the named ones (which must exist)."""
        return selected(self.config, kind, names)

    def run(self, *, sources: Sequence[str] | None = None, sinks: Sequence[str] | None = None, dry_run: bool = False,
            full_refresh: bool = False, wait: bool = False, command: str = "run") -> RunReport:
        """One run: every selected source, then every selected sink."""
        src_insts, sink_insts = self.select("sources", sources), self.select("sinks", sinks)
        run_id = str(uuid.uuid4())
        started = time.monotonic()
        report = RunReport(run_id=run_id, started_at=datetime.now(UTC).isoformat(), dry_run=dry_run, full_refresh=full_refresh)
        set_run(run_id)  # every log line of the run (and its workers) names it
        context = Context(config_dir=self.config.directory, run_id=run_id, dry_run=dry_run, state_dir=self.config.directory / ".crmsync" / "plugins")
        if not dry_run:
            # the store lock (shared) and this run's sources (exclusive): runs with
            # disjoint sources go side by side; sinks are locked when they deliver
            self.store.locks.acquire_locks(run_id, [f"source:{i.name}" for i in src_insts], wait=wait)
        try:
            if not dry_run:
                self.store.runs.start(run_id, command)
            report.sources = [SourceReport(i.name, i.plugin) for i in src_insts]
            changed: dict[str, dict[str, str]] = {}  # a dry run's: source -> id -> status
            pairs = list(zip(src_insts, report.sources, strict=True))
            crm = [p for p in pairs if getattr(self.host.sources.get(p[0].plugin), "channel", "") == "crm"]
            rest = [p for p in pairs if p not in crm]
            # 1. read: the CRM's own records first
            self._read(crm, context, full_refresh, changed, report.identity, 0)
            # a dry run links too (writing nothing): a linked author changes the record,
            # and the plan must count what the run will do
            first_read = full_refresh or any(self.store.bookmarks.get(i.name) is None for i, _r in rest)
            self.resolution.prepare(report.identity, build_now=first_read and not dry_run, dry_run=dry_run)
            # 2. then the rest: read -> resolve -> enrich -> commit, batch by batch
            self._read(rest, context, full_refresh, changed, report.identity, len(crm))
            # 3. identities after the sources
            if not dry_run and self.config.identity_enabled:
                self.resolution.relink(report.identity, run_id, datetime.fromisoformat(report.started_at))
                if any(r.new or r.updated for r in report.sources):
                    self.resolution.score(report.identity)
            self.resolution.release()
            # 4. deliver
            report.sinks = [SinkReport(i.name, i.plugin) for i in sink_insts]
            self._deliver(sink_insts, report.sinks, context, changed, wait)
            report.conclude()
        except KeyboardInterrupt as exc:
            # Ctrl-C: sources and sinks stopped at a batch or page boundary, what they
            # wrote is committed; the report goes with the exception (crmsync run prints it)
            report.status, report.exit_code = "interrupted", EXIT_INTERRUPTED
            exc.report = report  # type: ignore[attr-defined]
            raise
        finally:
            report.duration = round(time.monotonic() - started, 3)
            report.finished_at = datetime.now(UTC).isoformat()
            if not dry_run:
                if report.status == "running":
                    report.status = "crashed"
                self.store.runs.finish(run_id, report.status, report.as_dict())
                self.store.locks.release()
        return report

    # read -> resolve -> enrich -> commit ----------------------------------------
    def _read(self, pairs: list[Pair], context: Context, full_refresh: bool, changed: dict[str, dict[str, str]], identity_counts: dict[str, int], offset: int) -> None:
        if not pairs:
            return
        workers = max(1, min(self.config.concurrency, len(pairs)))
        policy = ReadPolicy(self.config.batch_size, self.config.retry_attempts, self.config.retry_max_wait, full_refresh, context.dry_run, self.stop)
        # one source alone goes to a worker too: what it reads (a CRM export, a mailbox)
        # leaves no garbage in this process, whose memory every later worker inherits
        if self.config.workers == "process" and not context.dry_run:
            if any(self.store.bookmarks.get(inst.name) is None for inst, _rep in pairs):
                self._warm_up_enrichers(pairs, context)
            jobs = [(rep, offset + pos, self._source_job(inst, context, policy, offset + pos)) for pos, (inst, rep) in enumerate(pairs)]
            read_in_workers(jobs, workers, self.progress, identity_counts)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="source") as pool:
            futures = [pool.submit(self._read_one, inst, rep, context, policy, changed, identity_counts, offset + pos) for pos, (inst, rep) in enumerate(pairs)]
            _wait_stopping(futures, self.stop)

    def _read_one(self, inst: InstanceConfig, rep: SourceReport, context: Context, policy: ReadPolicy, changed: dict[str, dict[str, str]],
                  identity_counts: dict[str, int], pos: int, channel: Any = None) -> None:
        """One source through the stages, in this process (or this worker)."""
        enrich = Enrichment(lambda: make_enrichers(self.config, self.host, inst, context), inst.name, rep.errors)

        def commit(batch: Batch) -> None:
            if self.suppression.active:  # erased or opted-out people: never stored, never synced
                (batch.records, n), (batch.people, m) = self.suppression.keep(batch.records), self.suppression.keep(batch.people)
                rep.suppressed += n + m
            if context.dry_run:
                batch.records = self.resolution.resolve(batch.records, rep, identity_counts, write=False)
                _commit.classify(self.store.interactions, batch, rep, changed.setdefault(inst.name, {}))
                return
            batch.records = enrich(self.resolution.resolve(batch.records, rep, identity_counts))
            _commit.commit(self.store.interactions, batch, rep, context.run_id)
            if channel is not None:
                channel.send(_commit.committed_message(rep, identity_counts))

        def make_source() -> Source:
            cls: type[Source] = self.host.get("sources", inst.plugin)
            return cls(inst.name, self.config.resolved_options(inst), context)

        with bound(source=inst.name):
            read_source(make_source, rep, self.store.bookmarks, policy, bar(f"source {inst.name}", self.progress, pos, channel=channel), commit)

    def _source_job(self, inst: InstanceConfig, context: Context, policy: ReadPolicy, pos: int) -> Any:
        """A source read in a forked worker: it returns its report and identity counts."""

        def job(channel: Any) -> tuple[SourceReport, dict[str, int]]:
            self.store.after_fork()
            rep, counts = SourceReport(inst.name, inst.plugin), {}
            self._read_one(inst, rep, context, policy, {}, counts, pos, channel)
            return rep, counts

        return job

    def _warm_up_enrichers(self, pairs: list[Pair], context: Context) -> None:
        """A first run: load the enrichers' models (language, sentiment) once, here,
        for every worker to inherit; later runs load them only where needed."""
        for inst, _rep in pairs:
            try:
                make_enrichers(self.config, self.host, inst, context)
            except Exception:  # noqa: BLE001, S110 - the worker reports it against its source
                pass

    def _matchers(self) -> list[Any]:
        """The plugins' identity matchers; one that fails to start is left out."""
        self.host.collect()
        out = []
        for cls in self.host.matchers.values():
            try:
                out.append(cls())
            except Exception as exc:  # noqa: BLE001
                log.error("matcher %s failed to start: %s", cls, exc)
        return out

    # deliver -----------------------------------------------------------------
    def _deliver(self, insts: list[InstanceConfig], reports: list[SinkReport], context: Context, changed: dict[str, dict[str, str]], wait: bool) -> None:
        setups = [self._sink_setup(i) for i in insts]
        if context.dry_run:
            plan_context = Context(config_dir=self.config.directory, dry_run=True)
            for setup, rep in zip(setups, reports, strict=True):
                dry_run(setup, self.store, rep, changed, plan_context)
            return
        # one core per worker for a sink that allows it, when it is the run's only sink
        alone = self.config.workers == "process" and len(setups) == 1
        with ThreadPoolExecutor(max_workers=max(1, len(setups)), thread_name_prefix="sink") as pool:
            futures = [
                pool.submit(deliver_sink, s, self.store, context, rep, wait=wait, max_parts=self.config.concurrency if alone and s.cls.parallel else 1, show_progress=self.progress, stop=self.stop)
                for s, rep in zip(setups, reports, strict=True)
            ]
            _wait_stopping(futures, self.stop)

    def _sink_setup(self, inst: InstanceConfig) -> SinkSetup:
        return SinkSetup(inst.name, inst.plugin, self.host.get("sinks", inst.plugin), lambda: self.config.resolved_options(inst), inst.sources, self.config.retry_attempts, self.config.retry_max_wait)


def _wait_stopping(futures: list[Any], stop: threading.Event) -> None:
    """Wait for the threads of a phase; on Ctrl-C tell them to stop at their next
    record or page (leaving the ``with`` block then waits only for that)."""
    try:
        for f in futures:
            f.result()
    except KeyboardInterrupt:
        stop.set()
        raise


__all__ = ["EXIT_CONFIG", "EXIT_LOCKED", "EXIT_OK", "EXIT_PARTIAL", "RunReport", "Runner", "SinkReport", "SourceReport"]
