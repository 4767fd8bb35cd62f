"""Resolve: link each record's author to a CRM contact, or to one identity per person.

:class:`Resolution` holds the contact index (``matching.Resolver``) for a run:

* ``prepare`` once the CRM sources are read: built now when most batches will
  need it (a first read), otherwise deferred until a batch does, so a run
  with nothing new never reads the contacts;
* ``resolve`` per batch: the identity ladder (CRM id, verified email, email,
  profile URL, handle, fuzzy name) links an author, queues the candidates
  below ``auto_link_threshold`` for review, and clusters unknown authors by
  shared keys;
* ``relink`` after the sources: records stored before contacts changed, or
  before review decisions, get another look;
* ``score`` (``influence``): influence and flags per author.

It reads and writes through the store's ``identities`` and ``interactions``
parts only; counts go into the dict it is handed (the run report's
``identity``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...contract.schema import Identity, Interaction
from ...store.identities import Identities
from ...store.interactions import Interactions
from ..report import SourceReport

log = logging.getLogger("crmsync.pipeline.resolve")

#: a CRM of up to this many contacts is indexed in memory (a few MB, and a lookup is a
#: dict access: 39 against 68 µs a record in bench_stages); a larger one is read from
#: the store's contact_index a batch at a time, so memory does not grow with the CRM
IN_MEMORY_UP_TO = 5_000

#: the contact index of a run that has not needed it yet
_UNBUILT: Any = type("_Unbuilt", (), {"__repr__": lambda self: "<resolver not built yet>"})()


@dataclass
class Settings:
    """``[identity]`` of the config, and the batch size relinking writes in."""

    enabled: bool = True
    auto_link_threshold: float = 0.9
    fuzzy_threshold: int = 90
    influence: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 500


class Resolution:
    """Identity resolution over one store, for one run (or one worker of it)."""

    def __init__(self, identities: Identities, interactions: Interactions, settings: Settings, make_matchers: Callable[[], list[Any]]) -> None:
        self.identities = identities
        self.interactions = interactions
        self.settings = settings
        self.make_matchers = make_matchers
        self.resolver: Any = None  # or _UNBUILT until a batch needs it
        self.built_at = datetime.now(UTC)
        #: resolve batches (off until the CRM's own records are read, and in dry runs)
        self.active = False
        #: a dry run: the store's contact index is read, never brought in step
        self.read_only = False
        self._lock = threading.Lock()

    # the index -------------------------------------------------------------
    def prepare(self, counts: dict[str, int], *, build_now: bool, dry_run: bool = False) -> None:
        """Before the non-CRM sources: build the index now (a first read: most
        batches will need it) or defer it."""
        self.built_at = datetime.now(UTC)
        self.read_only = dry_run
        self.active = self.settings.enabled
        if build_now:
            self.resolver = self._build(counts)
            return
        if not self.settings.enabled:
            self.resolver = None
            return
        contacts = self.identities.count_contacts()
        counts.update({"contacts": contacts, "linked": 0, "candidates": 0, "relinked": 0})
        # a later run may find nothing new: built by the first batch that needs it
        # (in that source's worker), or by the relink. Records stored later are
        # matched against every contact the store holds from now on.
        self.resolver = _UNBUILT if contacts else None

    def release(self) -> None:
        """Delivering needs no index: freed (and not copied into sink workers)."""
        self.resolver = None
        self.active = False

    def _current(self) -> Any:
        """The resolver, built on first use when it was deferred (one build per
        process; source threads share it)."""
        if self.resolver is _UNBUILT:
            with self._lock:
                if self.resolver is _UNBUILT:
                    # built_at stays the deferral time: the index holds at least
                    # every contact the store had then
                    self.resolver = self._build(None)
        return self.resolver

    def _build(self, counts: dict[str, int] | None, *, reset: bool = True) -> Any:
        """A resolver over every contact the store holds now (the caller records
        when, in ``built_at``); its count goes into ``counts``."""
        if not self.settings.enabled:
            return None
        from .matching import ContactIndex, Resolver
        from .stored import StoredContactIndex, sync

        index: Any
        if not self.read_only:
            sync(self.identities)
        if self.read_only and self.identities.count_stale_contacts():
            # a dry run may not bring the store's index in step: the contacts are read as they are
            index = ContactIndex(self.identities.contacts())
        else:
            index = StoredContactIndex(self.identities)
            if len(index) <= IN_MEMORY_UP_TO:
                index = ContactIndex(self.identities.contacts())
        if counts is not None and reset:
            counts.update({"contacts": len(index), "linked": 0, "candidates": 0, "relinked": 0})
        elif counts is not None:
            counts["contacts"] = len(index)
        if not len(index):
            return None
        s = self.settings
        return Resolver(index, decisions=self.identities.decisions(), matchers=self.make_matchers(), auto_link_threshold=s.auto_link_threshold, fuzzy_threshold=s.fuzzy_threshold)

    # per batch ---------------------------------------------------------------
    def resolve(self, recs: list[Interaction], rep: SourceReport, counts: dict[str, int], *, write: bool = True) -> list[Interaction]:
        """Link authors to CRM contacts; queue candidates; one identity per unknown person.
        ``write=False`` (a dry run): the same records, nothing stored (no candidates,
        no new clustering keys), so the plan counts what the run will do."""
        if not (self.active and recs):
            return recs
        from .matching import cluster_keys, link

        resolver = self._current()
        if resolver is not None and hasattr(resolver.index, "prefetch"):
            resolver.index.prefetch(r.author for r in recs)
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
                elif a.identity_id:
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
            clusters = self.identities.cluster(unlinked, write=write)
            for n, rec in enumerate(out):
                a = rec.author
                if a is not None and a.identity_id in clusters and clusters[a.identity_id] != a.identity_id:
                    moved = rec.model_copy(update={"author": a.model_copy(update={"identity_id": clusters[a.identity_id]})})
                    moved.content_hash = moved.compute_content_hash()
                    out[n] = moved
        added = self.identities.add_candidates(candidates) if write else 0
        rep.linked += linked
        counts["linked"] = counts.get("linked", 0) + linked
        counts["candidates"] = counts.get("candidates", 0) + added
        return out

    # after the sources -------------------------------------------------------
    def relink(self, counts: dict[str, int], run_id: str, started_at: datetime) -> None:
        """After contacts changed or review decisions were made, link earlier interactions too."""
        changed = self.identities.count_contacts(changed_since=started_at)
        decisions = self.identities.unapplied_decisions()
        if not (changed or decisions):
            return
        # what this run stored after its resolver was built was matched against every
        # contact the store then held: only older records need another look
        before: datetime | None = self.built_at
        if self.resolver is None or self.resolver is _UNBUILT:
            # not built in this process: built now, over what the store holds now. If
            # contacts changed since it was deferred (or there were none at the start:
            # loaded during this run, possibly by another process), older records get a look
            if self.resolver is None or self.identities.count_contacts(changed_since=before):
                self.built_at, before = datetime.now(UTC), None
            self.resolver = self._build(counts, reset=False)
            if self.resolver is None:
                return
        elif self.identities.count_contacts(changed_since=self.built_at):
            # contacts changed since the index was built (another process, or authors
            # merged into them): the index takes in those, and older records get a look
            since, self.built_at = self.built_at, datetime.now(UTC)
            self.resolver.refresh(self.identities.contacts(changed_since=since))
            counts["contacts"] = len(self.resolver.index)
            before = None
        # whose records: with the built-in ladder, only an author who shares a key with a
        # contact written during this run can link now (a review decision or a plugin
        # matcher can link anyone: then every author gets a look)
        authors = None
        if not decisions and not self.resolver.matchers:
            authors = self._authors_sharing_keys(self.identities.contacts(changed_since=started_at))
        if decisions:
            before = None
        counts["relinked"] = self._relink(before, authors, run_id)
        self.identities.mark_decisions_applied()

    def _relink(self, before: datetime | None, authors: set[str] | None, run_id: str) -> int:
        from .matching import link

        relinked = 0
        pending: dict[str, list[Interaction]] = {}
        # only the authors are read (most find no contact again); a match reads its record.
        # An author recurs across records (44k unlinked records, 26k authors at 100k):
        # each one is resolved once
        outcome: dict[str, Any] = {}
        unseen = object()
        prefetch = getattr(self.resolver.index, "prefetch", None)
        for page in _pages(self.interactions.iter_authors(updated_before=before, unlinked_only=True, author_ids=authors), 500):
            if prefetch is not None:  # the index in the store: a page of authors looked up at once
                prefetch(author for _, author in page)
            for iid, author in page:
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
                got = self.interactions.get(iid)
                if got is None:
                    continue
                rec = got[0]
                pending.setdefault(rec.source, []).append(link(rec, match))
                if len(pending[rec.source]) >= self.settings.batch_size:
                    relinked += self.interactions.write_batch(rec.source, pending.pop(rec.source), run_id=run_id).updated
        for source, recs in pending.items():
            relinked += self.interactions.write_batch(source, recs, run_id=run_id).updated
        return relinked

    def _authors_sharing_keys(self, contacts: Iterable[Identity]) -> set[str] | None:
        """The unlinked authors (cluster ids) that share a key (canonical email, URL,
        handle) with one of ``contacts``; None, meaning every author, when a contact
        has an email without a canonical form (the ladder also matches raw emails)."""
        from .matching import canonical_email, cluster_keys, is_role_address

        keys: set[str] = set()
        for c in contacts:
            if any(canonical_email(e) is None and not is_role_address(e) for e in c.emails):
                return None
            keys.update(cluster_keys(c))
        return self.identities.by_keys(keys)

    def score(self, counts: dict[str, int]) -> None:
        """Influence score and flags for every author (one aggregate query)."""
        from .influence import influence

        influencers = detractors = 0
        # a page of authors at a time: every author's stats and record at once would be
        # the run's largest allocation, and grow with the store
        for chunk in self.interactions.author_stats_pages(2000):
            people = self.identities.by_id([s[0] for s in chunk])
            changed = []
            for author_id, count, engagement, mentions, sentiment in chunk:
                person = people.get(author_id)
                if person is None:
                    continue
                inf = influence(count, engagement, mentions, sentiment, self.settings.influence)
                if person.influence != inf.score or person.flags != inf.flags:
                    person.influence, person.flags = inf.score, inf.flags
                    changed.append(person)
            if changed:
                self.identities.update(changed)
            influencers += sum(1 for p in people.values() if "influencer" in p.flags)
            detractors += sum(1 for p in people.values() if "detractor" in p.flags)
        counts["influencers"] = influencers
        counts["detractors"] = detractors


def _pages(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    page: list[Any] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
