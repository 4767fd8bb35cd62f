"""The contact index in the store, read a batch at a time.

:class:`StoredContactIndex` answers what :class:`~.matching.ContactIndex` answers
(``contacts``, ``by_key``, ``by_raw_email``, ``by_domain``, ``by_host``, ``ids``,
``names_in``), so the :class:`~.matching.Resolver` and plugin matchers use either.
Its rows are the store's ``contact_index`` table, which
:func:`sync` keeps in step with the contacts. A process holds only what its
current batches looked up: the keys of a batch's authors are fetched in one query
per kind (:meth:`StoredContactIndex.prefetch`), the contacts they hit in one more,
and the caches are bounded. A CRM of 200,000 contacts no longer sits in the
memory of the run and of every source worker.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping
from typing import Any

from ...contract.schema import Identity
from ...store.identities import Identities
from .matching import canonical_email, contact_entries, fuzzy_blocks, identity_keys

#: cached lookups per process before a cache starts afresh
_MAX_KEYS = 20_000
_MAX_RECORDS = 5_000
_MAX_BLOCKS = 2_000


def stored_entries(c: Identity) -> Iterator[tuple[str, str]]:
    """A contact's rows in ``contact_index``: ``("contact", id)`` for every contact the
    index holds, then its lookup keys (:func:`~.matching.contact_entries`). A
    contact removed from the CRM, or without CRM ids, has none."""
    if not c.crm_ids or c.removed or not c.identity_id:
        return
    yield "contact", c.identity_id
    for kind, key in contact_entries(c):
        yield kind, _text(kind, key)


def sync(identities: Identities) -> int:
    """Bring the store's index in step with its contacts; how many were (re)indexed."""
    return identities.sync_contact_index(stored_entries)


def _text(kind: str, key: Any) -> str:
    # an identity key is a (kind, value) pair: "email:ana@x.example", "handle:twitter:ana"
    return f"{key[0]}:{key[1]}" if kind == "key" else str(key)


class _Table:
    """One kind of key of the index, read like the in-memory index's dicts (``get``, ``in``)."""

    def __init__(self, index: StoredContactIndex, kind: str) -> None:
        self.index = index
        self.kind = kind
        self._cache: dict[str, frozenset[str]] = {}

    def load(self, keys: Iterable[Any]) -> set[str]:
        """Fetch ``keys`` not looked up yet (one query per 500); the contact ids found."""
        texts = {_text(self.kind, k) for k in keys}
        missing = [t for t in texts if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > _MAX_KEYS:
                self._cache.clear()
            found = self.index.identities.contact_ids_by(self.kind, missing)
            for t in missing:
                self._cache[t] = frozenset(found.get(t, ()))
        return {cid for t in texts for cid in self._cache.get(t, ())}

    def get(self, key: Any, default: Any = None) -> Any:
        text = _text(self.kind, key)
        got = self._cache.get(text)
        if got is None:
            self.load([key])
            got = self._cache.get(text, frozenset())
        return set(got) if got else default

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def clear(self) -> None:
        self._cache.clear()


class _Contacts(Mapping[str, Identity]):
    """``identity_id -> Identity`` of the indexed contacts, read from the store."""

    def __init__(self, index: StoredContactIndex) -> None:
        self.index = index
        self._raw: dict[str, str] = {}

    def load(self, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in self._raw]
        if not missing:
            return
        if len(self._raw) + len(missing) > _MAX_RECORDS:
            self._raw.clear()
        present = self.index.contact_ids.load(missing)
        self._raw.update(self.index.identities.records_by_id(sorted(present)))

    def __getitem__(self, contact_id: str) -> Identity:
        if contact_id not in self._raw:
            self.load([contact_id])
        raw = self._raw.get(contact_id)
        if raw is None:
            raise KeyError(contact_id)
        return Identity.model_validate_json(raw)

    def __contains__(self, contact_id: object) -> bool:
        return isinstance(contact_id, str) and contact_id in self.index.contact_ids

    def __iter__(self) -> Iterator[str]:
        return self.index.identities.iter_contact_keys("contact")

    def __len__(self) -> int:
        return len(self.index)

    def items(self) -> ItemsView[str, Identity]:
        return _Items(self)

    def clear(self) -> None:
        self._raw.clear()


class _Items(ItemsView[str, Identity]):
    """Every contact, read from the store a page at a time (a matcher that walks them all)."""

    _mapping: _Contacts

    def __iter__(self) -> Iterator[tuple[str, Identity]]:
        page: list[str] = []
        for cid in self._mapping:
            page.append(cid)
            if len(page) == 500:
                yield from self._page(page)
                page = []
        yield from self._page(page)

    def _page(self, ids: list[str]) -> Iterator[tuple[str, Identity]]:
        for cid, raw in self._mapping.index.identities.records_by_id(ids).items():
            yield cid, Identity.model_validate_json(raw)


class StoredContactIndex:
    """The CRM's contacts, indexed by every key, in the store (see the module)."""

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.contact_ids = _Table(self, "contact")
        self.by_key = _Table(self, "key")
        self.by_raw_email = _Table(self, "email")
        self.by_domain = _Table(self, "domain")
        self.by_host = _Table(self, "host")
        self.contacts = _Contacts(self)
        self._count: int | None = None
        self._names: dict[tuple[str, str], dict[str, str]] = {}

    ids = staticmethod(lambda table, key: set(table.get(key) or ()))

    def prefetch(self, authors: Iterable[Identity | None]) -> None:
        """Look up at once every key the ladder will ask for about ``authors`` (a batch),
        and the contacts they name."""
        wanted: list[tuple[Identity, set[str], set[tuple[str, str]]]] = []
        for a in authors:
            if a is None or a.crm_ids:
                continue
            raw_a: set[str] = set()
            keys_a: set[tuple[str, str]] = set(identity_keys(a))
            for email in a.emails:
                raw_a.add(email.strip().lower())
                canon = canonical_email(email)
                if canon:
                    keys_a.add(("email", canon))
            wanted.append((a, raw_a, keys_a))
        raw = set().union(*(r for _, r, _ in wanted))
        keys = set().union(*(k for _, _, k in wanted))
        hits = self.by_raw_email.load(raw) | self.by_key.load(keys)
        self.contacts.load(sorted(hits))
        # the fuzzy rung's blocks too, for the authors no key found (the ones it reaches):
        # a query a block cost 45 µs a record
        domains: dict[str, None] = {}
        hosts: dict[str, None] = {}
        for a, raw_a, keys_a in wanted:
            if not a.name or self.by_raw_email.load(raw_a) or self.by_key.load(keys_a):
                continue
            a_domains, a_hosts = fuzzy_blocks(a)
            domains.update(dict.fromkeys(a_domains))
            hosts.update(dict.fromkeys(a_hosts))
        self._load_names("domain", domains)
        self._load_names("host", hosts)

    def update(self, contacts: Iterable[Identity] = ()) -> None:
        """Take in contacts that changed: the store's index is brought in step (the
        contacts themselves are read from there) and this process's caches emptied."""
        sync(self.identities)
        for table in (self.contact_ids, self.by_key, self.by_raw_email, self.by_domain, self.by_host, self.contacts):
            table.clear()
        self._names.clear()
        self._count = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = self.identities.count_contact_keys("contact")
        return self._count

    def names_in(self, block: _Table, key: str) -> dict[str, str]:
        """``contact id -> name`` of one block (``by_domain`` or ``by_host``)."""
        names = self._names.get((block.kind, key))
        if names is None:
            self._load_names(block.kind, [key])
            names = self._names.get((block.kind, key), {})
        return names

    def _load_names(self, kind: str, keys: Iterable[str]) -> None:
        missing = [k for k in keys if (kind, k) not in self._names]
        if not missing:
            return
        if len(self._names) + len(missing) > _MAX_BLOCKS:
            self._names.clear()
        found = self.identities.contact_names_by(kind, missing)
        for k in missing:
            self._names[(kind, k)] = found.get(k, {})


__all__ = ["StoredContactIndex", "stored_entries", "sync"]
