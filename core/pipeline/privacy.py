"""Privacy: who must not be synced, and erasing a person everywhere.

* :class:`Suppression` is a step of the data path, between read and resolve: it drops
  the records of people on the suppression list (erased with ``crmsync forget``; the
  store keeps only hashes of their keys) or on ``[privacy] opt_out`` (emails, domains,
  handles), counting them in the source's report.
* :func:`plan_erasure` finds a person's identities and interactions; :func:`erase`
  asks every sink that holds them to delete them (:meth:`crmsync.Sink.delete`), then
  removes them from the store and suppresses the person's keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..contract.base import Context, Deletion, Sink
from ..contract.schema import Identity, Interaction
from ..host.config import Config
from ..host.plugins import PluginHost
from ..store import Store
from ..store.privacy import key_hash
from .preflight import selected
from .report import describe
from .resolve.matching import canonical_email, canonical_handle, identity_keys

log = logging.getLogger("crmsync.pipeline.privacy")


def person_keys(person: Identity) -> list[str]:
    """A person's keys as the store writes them (``email:...``, ``url:...``, ``handle:...``)."""
    return [f"{kind}:{value}" for kind, value in identity_keys(person)]


class Suppression:
    """Drops records by suppressed or opted-out people (``keep``)."""

    def __init__(self, hashes: set[str], opt_out: Sequence[str] = ()) -> None:
        self.hashes = hashes
        self.emails: set[str] = set()
        self.domains: set[str] = set()
        self.handles: set[str] = set()
        for item in opt_out:
            if "@" in item.lstrip("@") and ":" not in item:
                self.emails.add(canonical_email(item) or item.lower())
            elif ":" in item:
                h = canonical_handle(item)
                if h:
                    self.handles.add(f"{h[0]}:{h[1]}")
            else:
                self.domains.add(item.lstrip("@").lower())

    @classmethod
    def load(cls, store: Store, config: Config) -> Suppression:
        return cls(store.privacy.suppressed(), config.opt_out)

    @property
    def active(self) -> bool:
        return bool(self.hashes or self.emails or self.domains or self.handles)

    def blocked(self, person: Identity | None) -> bool:
        if person is None:
            return False
        keys = person_keys(person)
        if self.hashes and any(key_hash(k) in self.hashes for k in keys):
            return True
        for key in keys:
            kind, _, value = key.partition(":")
            if kind == "email" and (value in self.emails or value.rpartition("@")[2] in self.domains):
                return True
            if kind == "handle" and value in self.handles:
                return True
        return False

    def keep(self, records: list[Any]) -> tuple[list[Any], int]:
        """``records`` without those by suppressed people, and how many were dropped."""
        if not self.active:
            return records, 0
        kept = [r for r in records if not self.blocked(r.author if isinstance(r, Interaction) else r if isinstance(r, Identity) else None)]
        return kept, len(records) - len(kept)


@dataclass
class Erasure:
    """What ``crmsync forget`` removes: the identities, their keys, their interactions."""

    identity_ids: list[str]
    keys: list[str]
    interactions: list[tuple[str, str]]  # (interaction id, source)
    #: sink -> deletions it holds
    held: dict[str, list[Deletion]] = field(default_factory=dict)


def plan_erasure(store: Store, config: Config, *, emails: Sequence[str] = (), handles: Sequence[str] = (), author_ids: Sequence[str] = ()) -> Erasure:
    """Find the people and everything they authored (nothing changes)."""
    keys = [f"email:{canonical_email(e) or e.strip().lower()}" for e in emails]
    for h in handles:
        canon = canonical_handle(h)
        if canon:
            keys.append(f"handle:{canon[0]}:{canon[1]}")
    ids = store.identities.by_keys(keys) | set(author_ids)
    # CRM contacts (and authors linked to them) keep their addresses in their records
    wanted = set(keys)
    for iid, record in store.privacy.identities_mentioning(k.partition(":")[2].rpartition(":")[2] if k.startswith("handle:") else k.partition(":")[2] for k in keys).items():
        if wanted & set(person_keys(Identity.model_validate_json(record))):
            ids.add(iid)
    people = store.identities.by_id(sorted(ids))
    for person in people.values():  # every key of the person goes on the list, not only the one asked for
        keys.extend(k for k in person_keys(person) if k not in keys)
    interactions = store.privacy.interactions_of(ids)
    iids = {iid for iid, _ in interactions}
    held: dict[str, list[Deletion]] = {}
    for inst in selected(config, "sinks", None):
        entries = store.ledger.entries(inst.name)
        mine = [Deletion(iid, version, external) for iid, (version, external) in entries.items() if iid in iids]
        if mine:
            held[inst.name] = mine
    return Erasure(sorted(ids), keys, interactions, held)


@dataclass
class SinkErasure:
    name: str
    deleted: int = 0
    left: list[str] = field(default_factory=list)  # external ids still in the target
    error: str | None = None
    people: int = 0  # records the sink had created for the person, deleted
    people_note: str | None = None  # why people records could not be deleted


def _delete_people(sink: Sink, identity_ids: list[str], res: SinkErasure) -> int:
    if not identity_ids:
        return 0
    try:
        gone = sink.delete_people(identity_ids)
    except NotImplementedError as exc:
        res.people_note = str(exc) or "this sink cannot delete the records it created for people: check the CRM by hand"
        return 0
    return len(identity_ids) if gone is None else len(set(gone))


def erase(store: Store, config: Config, host: PluginHost, plan: Erasure, context: Context) -> tuple[list[SinkErasure], dict[str, int]]:
    """Delete the planned records from every sink that holds them, then from the store,
    and suppress the person's keys. A sink that cannot delete keeps its ledger entries
    (and the result lists its external ids for deletion by hand)."""
    results: list[SinkErasure] = []
    done: list[str] = []
    for inst in selected(config, "sinks", None):  # people records any sink created, held interactions or not
        if inst.name not in plan.held and plan.identity_ids:
            plan.held[inst.name] = []
    for name, deletions in plan.held.items():
        inst = config.sinks[name]
        res = SinkErasure(name)
        cls: type[Sink] = host.get("sinks", inst.plugin)
        sink = cls(name, config.resolved_options(inst), context)
        try:
            sink.open()
            try:
                gone = sink.delete(deletions) if deletions else []
                res.people = _delete_people(sink, plan.identity_ids, res)
            finally:
                sink.close()
            gone_ids = {d.interaction_id for d in deletions} if gone is None else set(gone)
            res.deleted = len(gone_ids)
            res.left = [d.external_id or d.interaction_id for d in deletions if d.interaction_id not in gone_ids]
            if not res.left:
                done.append(name)
        except NotImplementedError as exc:
            why = f" ({exc})" if str(exc) else ""
            res.error = f"the {inst.plugin} sink cannot delete{why}: remove these records from the target by hand"
            res.left = [d.external_id or d.interaction_id for d in deletions]
        except Exception as exc:  # noqa: BLE001 - one sink's failure leaves the others' deletions standing
            res.error = describe(exc)
            res.left = [d.external_id or d.interaction_id for d in deletions]
        if res.error:
            log.error("forget: sink %s: %s", name, res.error)
        results.append(res)
    counts = store.privacy.erase(plan.identity_ids, [iid for iid, _ in plan.interactions], done)
    counts["suppressed_keys"] = store.privacy.suppress(plan.keys)
    return results, counts


__all__ = ["Erasure", "SinkErasure", "Suppression", "erase", "person_keys", "plan_erasure"]
