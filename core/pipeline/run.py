"""The sync loop: sources into the store, the store into each sink, exactly once.

* Sources run concurrently, each in isolation. Their records are enriched and
  upserted in batches; a source's bookmark is stored in the same transaction
  as the records before it, so it never runs ahead of the data.
* Each sink then gets what its ledger says it lacks, in pages. A ledger entry
  is written only after the sink says the write is durable, and sinks upsert
  by ``interaction_id``; so a crash anywhere, followed by a re-run, leaves the
  sink with every interaction exactly once.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import logging
import logging.handlers
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..contract.base import Checkpoint, Context, Delivery, Enricher, Receipt, Rejected, Sink, Source
from ..host.config import Config, InstanceConfig, redact
from ..contract.errors import ConfigError, CrmsyncError, FatalError, SkippableError
from ..host.failpoints import failpoint
from ..host.plugins import PluginHost
from ..helpers.retry import retrying
from ..contract.schema import Identity, Interaction
from ..store import Store
from .deliver.pages import page_deliveries
from .deliver.plan import sink_plan
from .deliver.receipts import PartialWrites, ReceiptCheck
from .deliver.rejections import RejectionLog

log = logging.getLogger("crmsync.runner")

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3


@dataclass
class SourceReport:
    """What one source did in a run."""

    name: str
    plugin: str
    status: str = "pending"  # ok, failed
    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    identities: int = 0
    quarantined: int = 0
    linked: int = 0
    restarts: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SinkReport:
    """What one sink did in a run."""

    name: str
    plugin: str
    status: str = "pending"
    created: int = 0
    updated: int = 0
    delivered: int = 0
    #: records the target refused / the sink refused to send: quarantined, tried again next run
    rejected: int = 0
    invalid: int = 0
    backlog: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """The outcome of ``crmsync run`` (``--json`` prints it)."""

    run_id: str
    started_at: str
    dry_run: bool = False
    full_refresh: bool = False
    finished_at: str | None = None
    duration: float = 0.0
    status: str = "running"
    exit_code: int = 0
    sources: list[SourceReport] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)
    identity: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return _redact_tree(data)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "read": sum(s.read for s in self.sources),
            "new": sum(s.new for s in self.sources),
            "updated": sum(s.updated for s in self.sources),
            "quarantined": sum(s.quarantined for s in self.sources),
            "delivered": sum(s.delivered for s in self.sinks),
        }


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    return value


class Runner:
    """Runs configured sources and sinks over one store."""

    def __init__(self, config: Config, store: Store, host: PluginHost, *, progress: bool = False) -> None:
        self.config = config
        self.store = store
        self.host = host
        self.progress = progress
        self.resolver: Any = None  # or _UNBUILT until a batch needs it (see _defer_resolver)
        self._resolver_lock = threading.Lock()
        self._identity_active = False
        self._report_identity: dict[str, int] = {}
        self._resolver_built = datetime.now(UTC)
        self._channel: _WorkerChannel | None = None  # set in a worker process
        self._sinks_in_run = 0

    # --------------------------------------------------------------------
    def select(self, kind: str, names: Sequence[str] | None) -> list[InstanceConfig]:
        """The enabled instances of ``kind``, or the named ones (which must exist)."""
        configured: dict[str, InstanceConfig] = getattr(self.config, kind)
        if not names:
            return [i for i in configured.values() if i.enabled]
        out = []
        for n in names:
            if n not in configured:
                msg = f"unknown {kind[:-1]} {n!r}; configured: {', '.join(sorted(configured)) or '(none)'}"
                raise ConfigError(msg)
            out.append(configured[n])
        return out

    def run(
        self,
        *,
        sources: Sequence[str] | None = None,
        sinks: Sequence[str] | None = None,
        dry_run: bool = False,
        full_refresh: bool = False,
        wait: bool = False,
        command: str = "run",
    ) -> RunReport:
        """One run: every selected source, then every selected sink."""
        src_insts = self.select("sources", sources)
        sink_insts = self.select("sinks", sinks)
        run_id = str(uuid.uuid4())
        started = time.monotonic()
        report = RunReport(run_id=run_id, started_at=datetime.now(UTC).isoformat(), dry_run=dry_run, full_refresh=full_refresh)
        context = Context(config_dir=self.config.directory, run_id=run_id, dry_run=dry_run, state_dir=self._state_dir())
        if not dry_run:
            # the store lock (shared) and this run's sources (exclusive): runs with
            # disjoint sources go side by side; sinks are locked when they deliver
            self.store.acquire_locks(run_id, [f"source:{i.name}" for i in src_insts], wait=wait)
        try:
            if not dry_run:
                self.store.start_run(run_id, command)
            report.sources = [SourceReport(i.name, i.plugin) for i in src_insts]
            dry: dict[str, dict[str, str]] = {}
            pairs = list(zip(src_insts, report.sources, strict=True))
            # the CRM's own records first: identity resolution needs them
            crm = [p for p in pairs if getattr(self.host.sources.get(p[0].plugin), "channel", "") == "crm"]
            rest = [p for p in pairs if p not in crm]
            self._run_sources(crm, context, full_refresh, dry, 0)
            if dry_run:
                self.resolver = None
            elif full_refresh or any(self.store.get_bookmark(i.name) is None for i, _r in rest):
                # a first read: most batches will need the index, so it is built once,
                # here, and shared with the source workers
                self._resolver_built = datetime.now(UTC)
                self.resolver = self._make_resolver(report)
            else:
                # a later run may find nothing new: the index is built by the first
                # batch that needs it (in that source's worker), or by the relink
                self.resolver = self._defer_resolver(report)
            self._identity_active = self.config.identity_enabled and not dry_run
            self._report_identity = report.identity
            self._run_sources(rest, context, full_refresh, dry, len(crm))
            if not dry_run and self.config.identity_enabled:
                self._relink(report, context, started_at=datetime.fromisoformat(report.started_at))
            if not dry_run and self.config.identity_enabled and any(r.new or r.updated for r in report.sources):
                self._score_identities(report)
            report.sinks = [SinkReport(i.name, i.plugin) for i in sink_insts]
            self._sinks_in_run = len(sink_insts)
            self.resolver = None  # delivering needs no contact index: freed, not copied into sink workers
            if dry_run:
                for inst, rep in zip(sink_insts, report.sinks, strict=True):
                    self._dry_sink(inst, rep, dry)
            else:
                with ThreadPoolExecutor(max_workers=max(1, len(sink_insts)), thread_name_prefix="sink") as pool:
                    futures = [pool.submit(self._locked_sink, inst, rep, context, wait) for inst, rep in zip(sink_insts, report.sinks, strict=True)]
                    for f in futures:
                        f.result()
            failed = any(r.status in ("failed", "partial") for r in [*report.sources, *report.sinks])
            quarantined = any(r.quarantined for r in report.sources) or any(r.rejected or r.invalid for r in report.sinks)
            locked = any(r.status == "locked" for r in report.sinks)
            report.exit_code = EXIT_PARTIAL if (failed or quarantined) else (EXIT_LOCKED if locked else EXIT_OK)
            report.status = "failed" if failed else ("ok" if not quarantined else "ok_with_quarantine")
        finally:
            report.duration = round(time.monotonic() - started, 3)
            report.finished_at = datetime.now(UTC).isoformat()
            if not dry_run:
                if report.status == "running":
                    report.status = "crashed"
                self.store.finish_run(run_id, report.status, report.as_dict())
                self.store.release_lock()
        return report

    def _run_sources(self, pairs: list[tuple[InstanceConfig, SourceReport]], context: Context, full_refresh: bool, dry: dict, offset: int) -> None:
        if not pairs:
            return
        workers = max(1, min(self.config.concurrency, len(pairs)))
        # one source alone goes to a worker too: what it reads (a CRM export, a mailbox)
        # leaves no garbage in this process, whose memory every later worker inherits
        if self.config.workers == "process" and not context.dry_run:
            self._run_sources_in_processes(pairs, context, full_refresh, offset, workers)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="source") as pool:
            futures = [pool.submit(self._run_source, inst, rep, context, full_refresh, dry, offset + pos) for pos, (inst, rep) in enumerate(pairs)]
            for f in futures:
                f.result()

    def _run_sources_in_processes(self, pairs: list[tuple[InstanceConfig, SourceReport]], context: Context, full_refresh: bool, offset: int, workers: int) -> None:
        """Each source in a forked worker process of its own, ``workers`` at a time
        (parsing and enrichment are CPU-bound: threads would share one core). A worker
        inherits the loaded plugins, models and identity resolver, opens its own store
        connections and sends its report back. A worker that dies (out of memory, a
        crashing extension) fails its source only. Workers die with the run (SIGKILL
        on the parent's death), so a killed run leaves nothing behind but committed
        batches."""
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._worker_context = context
        _prctl()
        # what exists now (modules, models, the resolver) is shared with the workers:
        # out of the collector's reach, their pages stay shared instead of copied
        gc.freeze()
        if any(self.store.get_bookmark(inst.name) is None for inst, _rep in pairs):
            # a first run: load the enrichers' models (language, sentiment) once, here,
            # instead of once in every worker; later runs load them only where needed
            for inst, _rep in pairs:
                try:
                    self._make_enrichers(inst, context)
                except Exception as exc:  # noqa: BLE001 - the worker reports it against its source
                    log.debug("enrichers of %s did not warm up: %s", inst.name, exc)
        todo = list(enumerate(pairs))
        committed_identity: dict[str, dict[str, int]] = {}  # source -> identity counts committed so far
        running: dict[Any, tuple[Any, Any, SourceReport]] = {}  # sentinel -> (process, pipe, report)
        bars: dict[str, Any] = {}
        finished: dict[str, tuple[Any, ...]] = {}

        def refill() -> None:
            while todo and len(running) < workers:
                pos, (inst, rep) = todo.pop(0)
                _spawn(ctx, running, rep, _worker_main, (self, os.getpid(), inst.name, full_refresh, offset + pos), f"crmsync-source-{inst.name}")
                bars[rep.name] = _bar(f"source {inst.name}", self.progress, offset + pos)

        def on_message(rep: SourceReport, msg: tuple[Any, ...]) -> bool:
            if msg[0] == "progress":  # the worker's progress goes to this process's bars
                bars[rep.name].update(msg[1])
            elif msg[0] == "committed":  # counts so far, kept if the worker dies
                rep.__dict__.update(msg[1])
                committed_identity[rep.name] = msg[2]
            else:
                finished[rep.name] = msg
                return True
            return False

        def on_exit(rep: SourceReport, proc: Any, done: bool) -> None:
            bars.pop(rep.name).close()
            if not done:
                how = _how_it_ended(proc)
                rep.status = "failed"
                rep.errors.append(f"the worker process reading this source died ({how}; out of memory?); what it committed is kept (counted here) and the next run resumes")
                log.error("source %s: its worker process died (%s)", rep.name, how)
                for key, n in committed_identity.pop(rep.name, {}).items():
                    self._report_identity[key] = self._report_identity.get(key, 0) + n
                return
            committed_identity.pop(rep.name, None)
            _tag, result, counts = finished.pop(rep.name)
            rep.__dict__.update(result.__dict__)
            for key, n in counts.items():
                self._report_identity[key] = self._report_identity.get(key, 0) + n

        try:
            _watch_workers(running, on_message, on_exit, refill)
        finally:
            for bar in bars.values():
                bar.close()

    # identity resolution ------------------------------------------------
    def _defer_resolver(self, report: RunReport) -> Any:
        """Leave the contact index unbuilt until a batch needs it: a run with nothing
        new (the scheduled case) then never reads the contacts. Records stored later
        are matched against every contact the store holds from now on."""
        self._resolver_built = datetime.now(UTC)
        if not self.config.identity_enabled:
            return None
        contacts = self.store.count_contacts()
        report.identity.update({"contacts": contacts, "linked": 0, "candidates": 0, "relinked": 0})
        return _UNBUILT if contacts else None

    def _current_resolver(self) -> Any:
        """The resolver, built on first use when it was deferred (one build per
        process; source threads share it)."""
        if self.resolver is _UNBUILT:
            with self._resolver_lock:
                if self.resolver is _UNBUILT:
                    # _resolver_built stays the deferral time: the index holds at least
                    # every contact the store had then
                    self.resolver = self._make_resolver(None)
        return self.resolver

    def _make_resolver(self, report: RunReport | None, *, reset: bool = True) -> Any:
        """The resolver over every contact the store holds now (the caller records when,
        in ``_resolver_built``, before calling); its count goes into ``report``."""
        if not self.config.identity_enabled:
            return None
        from .resolve.matching import ContactIndex, Resolver

        index = ContactIndex(self.store.contacts())
        if report is not None and reset:
            report.identity.update({"contacts": len(index), "linked": 0, "candidates": 0, "relinked": 0})
        elif report is not None:
            report.identity["contacts"] = len(index)
        if not len(index):
            return None
        self.host.collect()
        matchers = []
        for cls in self.host.matchers.values():
            try:
                matchers.append(cls())
            except Exception as exc:  # noqa: BLE001
                log.error("matcher %s failed to start: %s", cls, exc)
        return Resolver(index, decisions=self.store.decisions(), matchers=matchers, auto_link_threshold=self.config.auto_link_threshold, fuzzy_threshold=self.config.fuzzy_threshold)

    def _resolve(self, recs: list[Interaction], rep: SourceReport | None, report_counts: dict[str, int] | None = None) -> list[Interaction]:
        """Link authors to CRM contacts; queue candidates; one identity per unknown person."""
        from .resolve.matching import cluster_keys, link

        resolver = self._current_resolver()
        out: list[Interaction] = []
        candidates: list[dict[str, Any]] = []
        unlinked: dict[str, list[str]] = {}
        linked = 0
        for rec in recs:
            a = rec.author
            if a is not None and not a.crm_ids and resolver is not None:
                match, cands = resolver.resolve(a)
                if match is not None:
                    rec = link(rec, match)
                    linked += 1
                else:
                    if a.identity_id:
                        for c in cands:
                            candidates.append({"author_id": a.identity_id, "contact_id": c.contact_id, "method": c.method, "confidence": c.confidence,
                                               "evidence": json.dumps(c.evidence, default=str), "author": a.model_dump_json(), "interaction_id": rec.interaction_id})
                        keys = cluster_keys(a)
                        if keys:
                            unlinked[a.identity_id] = keys
            elif a is not None and not a.crm_ids and a.identity_id:
                keys = cluster_keys(a)
                if keys:
                    unlinked[a.identity_id] = keys
            out.append(rec)
        if unlinked:
            clusters = self.store.cluster(unlinked)
            for n, rec in enumerate(out):
                a = rec.author
                if a is not None and a.identity_id in clusters and clusters[a.identity_id] != a.identity_id:
                    moved = rec.model_copy(update={"author": a.model_copy(update={"identity_id": clusters[a.identity_id]})})
                    moved.content_hash = moved.compute_content_hash()
                    out[n] = moved
        added = self.store.add_candidates(candidates)
        if rep is not None:
            rep.linked += linked
        counts = report_counts if report_counts is not None else getattr(self, "_identity_counts", None)
        if counts is not None:
            counts["linked"] = counts.get("linked", 0) + linked
            counts["candidates"] = counts.get("candidates", 0) + added
        return out

    def _relink(self, report: RunReport, context: Context, started_at: datetime) -> None:
        """After contacts changed or review decisions were made, link earlier interactions too."""
        changed = self.store.contacts_changed_since(started_at)
        decisions = self.store.unapplied_decisions()
        if not (changed or decisions):
            return
        # what this run stored after its resolver was built was matched against every
        # contact the store then held: only older records need another look
        before: datetime | None = self._resolver_built
        if self.resolver is None or self.resolver is _UNBUILT:
            # not built in this process: built now, over what the store holds now. If
            # contacts changed since it was deferred (or there were none at the start:
            # loaded during this run, possibly by another process), older records get a look
            if self.resolver is None or self.store.contacts_changed_since(before):
                self._resolver_built, before = datetime.now(UTC), None
            self.resolver = self._make_resolver(report, reset=False)
            if self.resolver is None:
                return
        elif self.store.contacts_changed_since(self._resolver_built):
            # contacts changed since the index was built (another process, or authors
            # merged into them): the index takes in those, and older records get a look
            since, self._resolver_built = self._resolver_built, datetime.now(UTC)
            self.resolver.refresh(self.store.contacts(changed_since=since))
            report.identity["contacts"] = len(self.resolver.index)
            before = None
        # whose records: with the built-in ladder, only an author who shares a key with a
        # contact written during this run can link now (a review decision or a plugin
        # matcher can link anyone: then every author gets a look)
        authors = None
        if not decisions and not self.resolver.matchers:
            authors = self._authors_sharing_keys(self.store.contacts(changed_since=started_at))
        if decisions:
            before = None
        relinked = 0
        pending: dict[str, list[Interaction]] = {}
        from .resolve.matching import link

        # only the authors are read (most find no contact again); a match reads its record.
        # An author recurs across records (44k unlinked records, 26k authors at 100k):
        # each one is resolved once
        outcome: dict[str, Any] = {}
        unseen = object()
        for iid, author in self.store.iter_authors(updated_before=before, unlinked_only=True, author_ids=authors):
            if author.crm_ids:
                continue
            key = author.model_dump_json()
            match = outcome.get(key, unseen)
            if match is unseen:
                if len(outcome) >= 20_000:
                    outcome.clear()
                match = outcome[key] = self.resolver.resolve(author)[0]
            if match is None:
                continue
            got = self.store.get_interaction(iid)
            if got is None:
                continue
            rec = got[0]
            pending.setdefault(rec.source, []).append(link(rec, match))
            if len(pending[rec.source]) >= self.config.batch_size:
                relinked += self.store.write_batch(rec.source, pending.pop(rec.source), run_id=context.run_id).updated
        for source, recs in pending.items():
            relinked += self.store.write_batch(source, recs, run_id=context.run_id).updated
        self.store.mark_decisions_applied()
        report.identity["relinked"] = relinked

    def _authors_sharing_keys(self, contacts: Iterable[Identity]) -> set[str] | None:
        """The unlinked authors (cluster ids) that share a key (canonical email, URL,
        handle) with one of ``contacts``; None, meaning every author, when a contact
        has an email without a canonical form (the ladder also matches raw emails)."""
        from .resolve.matching import canonical_email, cluster_keys, is_role_address

        keys: set[str] = set()
        for c in contacts:
            if any(canonical_email(e) is None and not is_role_address(e) for e in c.emails):
                return None
            keys.update(cluster_keys(c))
        return self.store.identities_by_keys(keys)

    def _score_identities(self, report: RunReport) -> None:
        """Influence score and flags for every author (one aggregate query)."""
        from .resolve.influence import influence

        stats = self.store.author_stats()
        influencers = detractors = 0
        # in slices: every author's record at once would be the run's largest allocation
        for start in range(0, len(stats), 2000):
            chunk = stats[start : start + 2000]
            people = self.store.identities_by_id([s[0] for s in chunk])
            changed = []
            for author_id, count, engagement, mentions, sentiment in chunk:
                person = people.get(author_id)
                if person is None:
                    continue
                inf = influence(count, engagement, mentions, sentiment, self.config.influence)
                if person.influence != inf.score or person.flags != inf.flags:
                    person.influence, person.flags = inf.score, inf.flags
                    changed.append(person)
            if changed:
                self.store.update_identities(changed)
            influencers += sum(1 for p in people.values() if "influencer" in p.flags)
            detractors += sum(1 for p in people.values() if "detractor" in p.flags)
        report.identity["influencers"] = influencers
        report.identity["detractors"] = detractors

    def _state_dir(self):  # noqa: ANN202
        d = self.config.directory / ".crmsync" / "plugins"
        return d

    # sources ------------------------------------------------------------
    def _make_enrichers(self, inst: InstanceConfig, context: Context) -> list[Enricher]:
        names = inst.enrichers if inst.enrichers is not None else [n for n, e in self.config.enrichers.items() if e.enabled]
        out = []
        for n in names:
            e = self.config.enrichers[n]
            cls = self.host.get("enrichers", e.plugin)
            out.append(cls(n, self.config.resolved_options(e), context))
        return out

    def _run_source(self, inst: InstanceConfig, rep: SourceReport, context: Context, full_refresh: bool, dry: dict, pos: int) -> None:
        t0 = time.monotonic()
        bar = self._progress_bar(f"source {inst.name}", pos)
        source: Source | None = None
        try:
            cls: type[Source] = self.host.get("sources", inst.plugin)
            source = cls(inst.name, self.config.resolved_options(inst), context)
            # made when the first batch needs them: a source with nothing new loads no models
            enrichers = _Lazy(lambda: [] if context.dry_run else self._make_enrichers(inst, context))
            if full_refresh and not context.dry_run:
                self.store.reset_bookmark(inst.name)
            state = None if full_refresh else self.store.get_bookmark(inst.name)
            attempts = self.config.retry_attempts
            for attempt in retrying(attempts=attempts, max_wait=self.config.retry_max_wait, name=f"source {inst.name}"):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        rep.restarts += 1
                        state = None if (full_refresh and rep.read == 0) else self.store.get_bookmark(inst.name)
                    self._consume(source, source.read(state), inst, rep, enrichers, context, bar, dry)
            rep.status = "partial" if source.errors else "ok"
        except SkippableError as exc:
            rep.status = "failed"
            rep.errors.append(f"stopped at bad input {exc.ref or ''}: {exc}")
            if not context.dry_run:
                self.store.write_batch(inst.name, [], rejected=[Rejected(exc.ref or inst.name, str(exc), _raw(exc.raw), "SkippableError")], run_id=context.run_id)
                rep.quarantined += 1
        except (CrmsyncError, Exception) as exc:  # noqa: BLE001 - one source never breaks the run
            rep.status = "failed"
            rep.errors.append(_describe(exc))
            log.error("source %s failed: %s", inst.name, _describe(exc))
            if not isinstance(exc, CrmsyncError):
                log.debug("".join(traceback.format_exception(exc)))
        finally:
            if source is not None:
                rep.errors.extend(e for e in source.errors if e not in rep.errors)
                rep.notes.extend(n for n in source.notes if n not in rep.notes)
            rep.duration = round(time.monotonic() - t0, 3)
            bar.close()

    def _consume(self, source: Source, stream: Iterable[Any], inst: InstanceConfig, rep: SourceReport, enrichers: _Lazy, context: Context, bar: Any, dry: dict) -> None:
        batch_size = self.config.batch_size
        recs: list[Interaction] = []
        people: list[Identity] = []
        bad: list[Rejected] = []
        checkpoint: dict[str, Any] | None = None

        def flush(final: bool = False) -> None:
            nonlocal recs, people, bad, checkpoint
            if not (recs or people or bad or checkpoint is not None):
                return
            if context.dry_run:
                # keep only id -> status: a dry run's memory must not grow with the input
                mine = dry.setdefault(inst.name, {})
                for iid, status in self.store.classify(recs).items():
                    if status == "new":
                        rep.new += 1
                    elif status == "edit":
                        rep.updated += 1
                    else:
                        rep.unchanged += 1
                    if status != "same":
                        mine[iid] = status
                rep.quarantined += len(bad)
            else:
                if recs and self._identity_active:
                    recs = self._resolve(recs, rep, self._report_identity)
                if recs and enrichers.get():
                    recs = self._enrich(enrichers.get(), recs, rep)
                failpoint("source.before_commit")
                res = self.store.write_batch(inst.name, recs, identities_=people, rejected=bad, bookmark=checkpoint, run_id=context.run_id)
                failpoint("source.after_commit")
                rep.new += res.new
                rep.updated += res.updated
                rep.unchanged += res.unchanged
                rep.identities += res.identities
                rep.quarantined += res.quarantined
                for r in bad:
                    log.warning("source %s: quarantined %s: %s", inst.name, r.ref, r.reason)
                if self._channel is not None:
                    # a worker: what is committed so far, so the run can still report it
                    # if this process dies before it sends its report
                    counts = {k: getattr(rep, k) for k in _COMMITTED_COUNTS}
                    self._channel.send(("committed", counts, dict(self._report_identity)))
            recs, people, bad, checkpoint = [], [], [], None

        try:
            for item in stream:
                if isinstance(item, Interaction):
                    if item.source != inst.name:
                        msg = f"yielded an interaction of source {item.source!r}; build records with Source.interaction()"
                        raise FatalError(msg, plugin=inst.name)
                    recs.append(item)
                    rep.read += 1
                    bar.update(1)
                elif isinstance(item, Identity):
                    people.append(item)
                    rep.read += 1
                    bar.update(1)
                elif isinstance(item, Rejected):
                    bad.append(item)
                elif isinstance(item, Checkpoint):
                    # every record before this checkpoint is in the buffer or committed
                    checkpoint = item.state
                else:
                    msg = f"yielded {type(item).__name__}; a source yields Interaction, Identity, Rejected or Checkpoint"
                    raise FatalError(msg, plugin=inst.name)
                if len(recs) + len(people) + len(bad) >= batch_size:
                    flush()
        except BaseException:
            # keep what was read before the failure (and the last checkpoint before it)
            flush()
            raise
        flush(final=True)

    def _enrich(self, enrichers: list[Enricher], recs: list[Interaction], rep: SourceReport) -> list[Interaction]:
        for enricher in enrichers:
            try:
                out = enricher.enrich_batch(recs)
                if len(out) != len(recs):
                    msg = f"enricher {enricher.instance!r} returned {len(out)} records for {len(recs)}"
                    raise FatalError(msg)
                recs = out
            except Exception as exc:  # noqa: BLE001 - records are kept unenriched
                msg = f"enricher {enricher.instance} failed, records stored without it: {_describe(exc)}"
                if msg not in rep.errors:
                    rep.errors.append(msg)
                    log.error("source %s: %s", rep.name, msg)
        return recs

    # sinks --------------------------------------------------------------
    def _locked_sink(self, inst: InstanceConfig, rep: SinkReport, context: Context, wait: bool) -> None:
        """Deliver one sink under its own lock: one process per sink at a time. A sink
        another run is delivering is waited for (``--wait``) or skipped: its backlog
        stays in the ledger for the next run."""
        name = f"sink:{inst.name}"
        if wait:
            self.store.acquire_locks(context.run_id, [name], wait=True)
        elif not self.store.try_lock(context.run_id, name):
            info = self.store.lock_holder(name)
            who = f"run {info.get('run_id')} (pid {info.get('pid')})" if info else "another run"
            rep.status = "locked"
            rep.backlog = self.store.backlog(inst.name, inst.sources)
            rep.notes.append(f"skipped: {who} is delivering this sink; its backlog goes with the next run (or use --wait)")
            log.warning("sink %s is locked by %s; skipped", inst.name, who)
            return
        try:
            self._run_sink(inst, rep, context)
        finally:
            self.store.release_lock(name)

    def _run_sink(self, inst: InstanceConfig, rep: SinkReport, context: Context) -> None:
        t0 = time.monotonic()
        try:
            total = self.store.backlog(inst.name, inst.sources)
            parts = self._sink_parts(inst, total)
            if parts > 1:
                self._run_sink_in_processes(inst, rep, context, total, parts)
            else:
                self._deliver(inst, rep, context, total=total)
        except Exception as exc:  # noqa: BLE001 - one sink never breaks another
            rep.status = "failed"
            rep.errors.append(_describe(exc))
            log.error("sink %s failed: %s", inst.name, _describe(exc))
        finally:
            rep.duration = round(time.monotonic() - t0, 3)
            try:
                rep.backlog = self.store.backlog(inst.name, inst.sources)
            except Exception:  # noqa: BLE001
                rep.backlog = -1

    def _progress_bar(self, desc: str, position: int, total: int | None = None) -> Any:
        """A progress bar here, or in a worker one whose steps go to the run's process."""
        if self._channel is not None and self.progress:
            return _RemoteBar(self._channel)
        return _bar(desc, self.progress, position, total=total)

    def _sink_parts(self, inst: InstanceConfig, total: int) -> int:
        """How many worker processes deliver this sink: one per core for a sink that
        allows it (``Sink.parallel``) when it is the run's only sink and the backlog
        is worth it (2,000 records a worker); otherwise it runs here."""
        if self.config.workers != "process" or self._sinks_in_run != 1:
            return 1
        cls: type[Sink] = self.host.get("sinks", inst.plugin)
        if not cls.parallel:
            return 1
        return max(1, min(self.config.concurrency, 16, total // 2000))

    def _deliver(self, inst: InstanceConfig, rep: SinkReport, context: Context, *, total: int | None = None, after: str = "", before: str | None = None) -> None:
        """Deliver the backlog of ``inst`` (the ids after ``after`` and below ``before``)."""
        bar = self._progress_bar(f"sink {inst.name}", 0, total)
        sink: Sink | None = None
        rejections: RejectionLog | None = None
        check: ReceiptCheck | None = None
        try:
            cls: type[Sink] = self.host.get("sinks", inst.plugin)
            sink = cls(inst.name, self.config.resolved_options(inst), context)
            sink.open()
            rejections = RejectionLog(self.store, inst.name, context.run_id)
            check = ReceiptCheck()
            # instance attributes: a sink may size its batches from its config in open()
            page_size = min(sink.batch_size, sink.flush_every or sink.batch_size)
            since_flush = 0
            profiles: dict[str, Identity] = {}
            policy = {"attempts": self.config.retry_attempts, "max_wait": self.config.retry_max_wait}

            def flush() -> None:
                receipts = check.keep(retrying(name=f"sink {inst.name}", **policy)(sink.flush) or ())
                failpoint("sink.after_flush")
                _drain_rejections(sink, rejections, rep, receipts)
                self._ledger(inst, rep, receipts, None, context, rejections)
                check.flushed()

            try:
                while True:
                    page = self.store.pending(inst.name, sources=inst.sources, after=after, before=before, limit=page_size)
                    if not page:
                        break
                    batch = page_deliveries(self.store, page, profiles)
                    check.handed(batch)
                    attempt = PartialWrites(sink.write, batch, lambda done: self._ledger(inst, rep, check.keep(done), batch, context, rejections))
                    receipts = retrying(name=f"sink {inst.name}", **policy)(attempt)
                    failpoint("sink.after_write")
                    if receipts is not None:
                        receipts = check.keep(receipts)
                    _drain_rejections(sink, rejections, rep, receipts or ())
                    if receipts:
                        self._ledger(inst, rep, receipts, batch, context, rejections)
                    since_flush += len(batch)
                    after = page[-1].interaction.interaction_id
                    bar.update(len(batch))
                    del page, batch  # not held while the next page is read: one page at a time in memory
                    if sink.flush_every and since_flush >= sink.flush_every:
                        flush()
                        since_flush = 0
                flush()
            finally:
                bar.close()
            rep.status = "ok"
            problem = check.problem()
            if problem:
                rep.status = "partial"
                rep.errors.append(problem)
                log.error("sink %s: %s", inst.name, problem)
        except (CrmsyncError, Exception) as exc:  # noqa: BLE001 - one sink never breaks another
            rep.status = "failed"
            rep.errors.append(_describe(exc))
            log.error("sink %s failed: %s", inst.name, _describe(exc))
            if sink is not None and rejections is not None:
                try:
                    _drain_rejections(sink, rejections, rep, getattr(exc, "receipts", None) or ())
                except Exception as rej_exc:  # noqa: BLE001
                    rep.errors.append(f"recording rejected records failed: {_describe(rej_exc)}")
            if getattr(exc, "receipts", None) and check is not None:
                exc.receipts = check.keep(exc.receipts)
            if getattr(exc, "receipts", None):  # durable before the failure: never sent twice
                try:
                    self._ledger(inst, rep, exc.receipts, None, context, rejections)
                except Exception as ledger_exc:  # noqa: BLE001
                    rep.errors.append(f"recording {len(exc.receipts)} confirmed receipt(s) failed: {_describe(ledger_exc)}")
            if sink is not None:
                try:
                    sink.abort()
                except Exception as abort_exc:  # noqa: BLE001
                    rep.errors.append(f"abort failed: {_describe(abort_exc)}")
        finally:
            if sink is not None:
                rep.notes.extend(sink.notes)
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001
                    rep.errors.append(f"close failed: {_describe(exc)}")

    def _run_sink_in_processes(self, inst: InstanceConfig, rep: SinkReport, context: Context, total: int, parts: int) -> None:
        """Deliver one sink from ``parts`` forked workers, each over its own range of
        interaction ids (they are uniform: uuid5), with a sink instance, a
        ``context.part`` and ledger writes of its own. A worker that dies fails the
        sink; what it confirmed is in the ledger, the rest goes with the next run."""
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._worker_context = context
        _prctl()
        gc.freeze()
        bounds: list[str | None] = ["", *(f"{16 * k // parts:x}" for k in range(1, parts)), None]
        bar = _bar(f"sink {inst.name}", self.progress, 0, total=total)
        reports = {k: SinkReport(inst.name, inst.plugin) for k in range(parts)}
        running: dict[Any, tuple[Any, Any, int]] = {}
        for k in range(parts):
            _spawn(ctx, running, k, _sink_worker_main, (self, os.getpid(), inst.name, k, bounds[k], bounds[k + 1]), f"crmsync-sink-{inst.name}-{k}")

        def on_message(k: int, msg: tuple[Any, ...]) -> bool:
            if msg[0] == "progress":
                bar.update(msg[1])
            elif msg[0] == "committed":  # counts so far, kept if the worker dies
                reports[k].__dict__.update(msg[1])
            elif msg[0] == "done":
                reports[k] = msg[1]
                return True
            return False

        def on_exit(k: int, proc: Any, finished: bool) -> None:
            if not finished:
                how = _how_it_ended(proc)
                reports[k].status = "failed"
                reports[k].errors.append(f"the worker process delivering part {k + 1} of {parts} died ({how}; out of memory?); what it confirmed is kept and the next run delivers the rest")
                log.error("sink %s: a worker process died (%s)", inst.name, how)

        try:
            _watch_workers(running, on_message, on_exit)
        finally:
            bar.close()
        for part in reports.values():
            rep.created += part.created
            rep.updated += part.updated
            rep.delivered += part.delivered
            rep.rejected += part.rejected
            rep.invalid += part.invalid
            rep.errors.extend(e for e in part.errors if e not in rep.errors)
            rep.notes.extend(n for n in part.notes if n not in rep.notes)
        rep.status = "failed" if any(p.status != "ok" for p in reports.values()) else "ok"
        rep.notes.append(f"delivered by {parts} worker processes")

    def _ledger(self, inst: InstanceConfig, rep: SinkReport, receipts: Iterable[Receipt] | None, batch: list[Delivery] | None, context: Context, rejections: RejectionLog | None = None) -> None:
        receipts = list(receipts or [])
        if not receipts:
            return
        ops = {d.interaction.interaction_id: d.operation for d in batch} if batch else None
        self.store.record_receipts(inst.name, receipts, context.run_id)
        failpoint("sink.after_ledger")
        if rejections is not None:
            rejections.resolve(receipts)
        for r in receipts:
            op = ops.get(r.interaction_id) if ops is not None else ("update" if r.version > 1 else "create")
            if op == "update":
                rep.updated += 1
            else:
                rep.created += 1
        rep.delivered += len(receipts)
        if self._channel is not None:  # a sink worker: counts so far, kept if it dies
            self._channel.send(("committed", {"created": rep.created, "updated": rep.updated, "delivered": rep.delivered, "rejected": rep.rejected, "invalid": rep.invalid}))

    def _dry_sink(self, inst: InstanceConfig, rep: SinkReport, dry: dict[str, dict[str, str]]) -> None:
        """Count what the sink would create or update, writing nothing."""
        ledger = self.store.ledger(inst.name)
        seen: set[str] = set()
        after = ""
        while True:
            page = self.store.pending(inst.name, sources=inst.sources, after=after, limit=1000)
            if not page:
                break
            for p in page:
                seen.add(p.interaction.interaction_id)
                if p.delivered_version is None:
                    rep.created += 1
                else:
                    rep.updated += 1
            after = page[-1].interaction.interaction_id
        for src, changed in dry.items():
            if inst.sources is not None and src not in inst.sources:
                continue
            for iid in changed:
                if iid in seen:
                    continue
                seen.add(iid)
                if iid in ledger:
                    rep.updated += 1
                else:
                    rep.created += 1
        rep.backlog = rep.created + rep.updated
        rep.status = "dry-run"
        cls = self.host.get("sinks", inst.plugin)
        rep.notes.extend(sink_plan(self.store, cls, inst.name, self.config.resolved_options(inst), Context(config_dir=self.config.directory, dry_run=True), inst.sources))


# source worker processes -----------------------------------------------
#: the report counts a worker sends after each commit (the "committed" message)
_COMMITTED_COUNTS = ("read", "new", "updated", "unchanged", "identities", "quarantined", "linked")

#: the contact index of a run that has not needed it yet (Runner._defer_resolver)
_UNBUILT: Any = type("_Unbuilt", (), {"__repr__": lambda self: "<resolver not built yet>"})()


def _worker_main(runner: Runner, run_pid: int, name: str, full_refresh: bool, pos: int, pipe: Any) -> None:
    """A forked source worker: read the source, send the report back."""
    channel = _become_worker(runner, run_pid, pipe)
    inst = runner.config.sources[name]
    rep = SourceReport(inst.name, inst.plugin)
    counts: dict[str, int] = {}
    runner._report_identity = counts
    try:
        runner._run_source(inst, rep, runner._worker_context, full_refresh, {}, pos)
    finally:
        channel.send(("done", rep, counts))
        pipe.close()


def _sink_worker_main(runner: Runner, run_pid: int, name: str, part: int, after: str, before: str | None, pipe: Any) -> None:
    """A forked sink worker: deliver the ids after ``after`` and below ``before``."""
    channel = _become_worker(runner, run_pid, pipe)
    inst = runner.config.sinks[name]
    rep = SinkReport(inst.name, inst.plugin)
    context = dataclasses.replace(runner._worker_context, part=part)
    try:
        runner._deliver(inst, rep, context, after=after, before=before)
    finally:
        channel.send(("done", rep))
        pipe.close()


def _become_worker(runner: Runner, run_pid: int, pipe: Any) -> _WorkerChannel:
    """In a forked worker: die with the run, ignore Ctrl-C (the run handles it), send
    log records to the run's process, use database connections of its own."""
    _die_with_parent()
    if os.getppid() != run_pid:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["CRMSYNC_RUN_PID"] = str(run_pid)
    channel = _WorkerChannel(pipe)
    root = logging.getLogger("crmsync")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(channel)
    runner._channel = channel
    runner.store = runner.store.for_worker()
    return channel


def _spawn(ctx: Any, running: dict[Any, tuple[Any, Any, Any]], key: Any, target: Any, args: tuple[Any, ...], name: str) -> None:
    """Fork a worker ``target(*args, pipe)`` and add it to ``running`` under ``key``."""
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, send), name=name, daemon=True)
    proc.start()
    send.close()
    running[proc.sentinel] = (proc, recv, key)


def _how_it_ended(proc: Any) -> str:
    return f"killed by signal {-proc.exitcode}" if proc.exitcode and proc.exitcode < 0 else f"exit code {proc.exitcode}"


def _watch_workers(running: dict[Any, tuple[Any, Any, Any]], on_message: Any, on_exit: Any, refill: Any = None) -> None:
    """Supervise forked workers (``running``: sentinel -> (process, pipe, key)) until
    all have ended. Their log records go through this process's handlers; any other
    message goes to ``on_message(key, message)``, which says whether it was the last;
    ``on_exit(key, process, finished)`` follows each end. ``refill()`` may start more.
    On an error here (or Ctrl-C) every worker is killed: their writes are atomic."""
    from multiprocessing.connection import wait as wait_any

    try:
        if refill is not None:
            refill()
        while running:
            ready = set(wait_any([*running, *(r for _p, r, _k in running.values())]))
            for sentinel, (proc, recv, key) in list(running.items()):
                if sentinel not in ready and recv not in ready:
                    continue
                finished = eof = False
                try:
                    while recv.poll():
                        msg = recv.recv()
                        if msg[0] == "log":
                            logging.getLogger(msg[1].name).handle(msg[1])
                        elif on_message(key, msg):
                            finished = True
                except (EOFError, OSError):
                    eof = True
                if not finished and not eof and proc.exitcode is None:
                    continue
                proc.join()
                recv.close()
                del running[sentinel]
                on_exit(key, proc, finished)
            if refill is not None:
                refill()
    except BaseException:
        for proc, _recv, _key in running.values():
            proc.kill()
            proc.join()
        raise


class _WorkerChannel(logging.handlers.QueueHandler):
    """A worker's log records and, last, its report, sent to the run's process."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.pipe = pipe
        self.send_lock = threading.Lock()

    def enqueue(self, record: logging.LogRecord) -> None:
        self.send(("log", record))

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.pipe.send(message)


@functools.lru_cache(maxsize=1)
def _prctl() -> Any:
    """libc's prctl, looked up once in the run's process (each worker inherits it)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers are only used where fork is
        return None


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that forked it dies."""
    prctl = _prctl()
    if prctl is not None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class _Lazy:
    """A value made on first use."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._value: Any = None
        self._made = False

    def get(self) -> Any:
        if not self._made:
            self._value = self._make()
            self._made = True
        return self._value


class _RemoteBar:
    """A worker's progress, sent to the run's process in steps (a message every 0.2 s)."""

    def __init__(self, channel: _WorkerChannel) -> None:
        self.channel = channel
        self.pending = 0
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.close()
            self.last = now

    def close(self) -> None:
        if self.pending:
            self.channel.send(("progress", self.pending))
            self.pending = 0


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(desc: str, enabled: bool, position: int, total: int | None = None) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(desc=desc, total=total, unit="rec", position=position, leave=True, dynamic_ncols=True)


def _drain_rejections(sink: Sink, log_: RejectionLog, rep: SinkReport, receipts: Iterable[Receipt]) -> None:
    """Quarantine what ``sink`` reported as not written since the last call (a record
    rejected by an attempt that a retry then wrote has a receipt: not counted)."""
    if not sink.rejections:
        return
    written = {r.interaction_id for r in receipts}
    pending, sink.rejections = [r for r in sink.rejections if r.interaction_id not in written], []
    counts = log_.record(pending)
    rep.rejected += counts["rejected"]
    rep.invalid += counts["invalid"]
    for r in pending[:3]:
        log.warning("sink %s: %s %s: %s", rep.name, r.kind, r.interaction_id, r.reason)


def _raw(raw: bytes | str | None) -> bytes | None:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return raw


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CrmsyncError):
        return redact(f"{type(exc).__name__}: {exc}")
    return redact(f"{type(exc).__name__}: {exc}")


__all__ = ["EXIT_CONFIG", "EXIT_LOCKED", "EXIT_OK", "EXIT_PARTIAL", "RunReport", "Runner", "SinkReport", "SourceReport"]
