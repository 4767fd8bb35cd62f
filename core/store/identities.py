"""People: CRM contacts and the authors seen in conversations, the keys that
cluster one person's authors into one identity, and the review queue of
candidate matches with its decisions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..contract.schema import Identity
from .database import Database, aware, chunks, utcnow, write_rows
from .tables import contact_index, identities, identity_candidates, identity_keys, interactions


class Identities:
    def __init__(self, db: Database) -> None:
        self.db = db

    # people ----------------------------------------------------------------
    def all(self) -> Iterator[Identity]:
        with self.db.connect() as conn:
            for row in conn.execute(select(identities.c.record).order_by(identities.c.identity_id)):
                yield Identity.model_validate_json(row[0])

    def count(self) -> int:
        with self.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(identities)).scalar() or 0

    def by_id(self, ids: list[str]) -> dict[str, Identity]:
        out: dict[str, Identity] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(ids)), 500):
                for row in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.identity_id.in_(chunk))):
                    out[row[0]] = Identity.model_validate_json(row[1])
        return out

    def records_by_id(self, ids: list[str]) -> dict[str, str]:
        """``identity_id -> record`` (its JSON, unparsed) for those of ``ids`` the store holds."""
        out: dict[str, str] = {}
        with self.db.connect() as conn:
            for chunk in chunks(ids, 500):
                for iid, record in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.identity_id.in_(chunk))):
                    out[iid] = record
        return out

    def by_keys(self, keys: Iterable[str]) -> set[str]:
        """The identity ids that own any of ``keys`` (``kind:value``, as :meth:`cluster` writes them)."""
        out: set[str] = set()
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(keys)), 500):
                out.update(conn.execute(select(identity_keys.c.identity_id).where(identity_keys.c.key.in_(chunk))).scalars())
        return out

    def update(self, people: list[Identity]) -> None:
        """Replace identity records (influence scores, flags)."""
        now = utcnow()
        with self.db.begin() as conn:
            for chunk in chunks(people, 500):
                write_rows(conn, identities, [{"identity_id": p.identity_id, "record": p.model_dump_json(), "updated_at": now} for p in chunk], where=("identity_id",))

    def contacts(self, *, changed_since: datetime | None = None) -> Iterator[Identity]:
        """Identities that are CRM records (have CRM ids), or those written since ``changed_since``."""
        q = select(identities.c.record).where(identities.c.is_contact.is_(True))
        if changed_since is not None:
            q = q.where(identities.c.updated_at >= changed_since)
        with self.db.connect() as conn:
            for row in conn.execute(q):
                yield Identity.model_validate_json(row[0])

    def count_contacts(self, *, changed_since: datetime | None = None) -> int:
        """How many identities are CRM records (written since ``changed_since``, if given)."""
        q = select(func.count()).select_from(identities).where(identities.c.is_contact.is_(True))
        if changed_since is not None:
            q = q.where(identities.c.updated_at >= changed_since)
        with self.db.connect() as conn:
            return conn.execute(q).scalar() or 0

    # the contact index -------------------------------------------------------
    def sync_contact_index(self, entries: Callable[[Identity], Iterable[tuple[str, str]]], *, page: int = 2000) -> int:
        """Bring ``contact_index`` in step with the contacts: every contact written since
        its rows were made gets ``entries(contact)`` as its rows instead (``(kind, key)``
        pairs; none for a contact removed from the CRM). A page of contacts a
        transaction, so memory stays the same at any CRM size. Returns how many
        contacts were indexed."""
        done, last = 0, ""
        stale = or_(identities.c.indexed_at.is_(None), identities.c.indexed_at < identities.c.updated_at)
        while True:
            with self.db.begin() as conn:
                q = (select(identities.c.identity_id, identities.c.record, identities.c.updated_at)
                     .where(identities.c.is_contact.is_(True), stale, identities.c.identity_id > last).order_by(identities.c.identity_id).limit(page))
                rows = conn.execute(q).all()
                if not rows:
                    return done
                ids = [r[0] for r in rows]
                for chunk in chunks(ids, 500):
                    conn.execute(delete(contact_index).where(contact_index.c.contact_id.in_(chunk)))
                new: dict[tuple[str, str, str], dict[str, str]] = {}
                for cid, record, _ in rows:
                    for kind, key in entries(Identity.model_validate_json(record)):
                        row = {"kind": kind, "key": _index_key(key), "contact_id": cid}
                        new[(row["kind"], row["key"], cid)] = row
                write_rows(conn, contact_index, list(new.values()))
                write_rows(conn, identities, [{"identity_id": cid, "indexed_at": updated} for cid, _, updated in rows], where=("identity_id",))
                done += len(rows)
                last = ids[-1]

    def count_stale_contacts(self) -> int:
        """Contacts written since ``contact_index`` last took them in."""
        stale = or_(identities.c.indexed_at.is_(None), identities.c.indexed_at < identities.c.updated_at)
        with self.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(identities).where(identities.c.is_contact.is_(True), stale)).scalar() or 0

    def contact_ids_by(self, kind: str, keys: Iterable[str]) -> dict[str, set[str]]:
        """``key -> contact ids`` for those of ``keys`` that index contacts under ``kind``."""
        wanted = {_index_key(k): k for k in keys}
        out: dict[str, set[str]] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(wanted), 500):
                q = select(contact_index.c.key, contact_index.c.contact_id).where(contact_index.c.kind == kind, contact_index.c.key.in_(chunk))
                for key, cid in conn.execute(q):
                    out.setdefault(wanted[key], set()).add(cid)
        return out

    def contact_names_by(self, kind: str, keys: Iterable[str]) -> dict[str, dict[str, str]]:
        """``key -> {contact id -> name}`` of the contacts indexed under ``kind`` and each of
        ``keys`` (blocks of the fuzzy name match: a company's domain, a home page's host);
        keys that index no contact are left out. One query per 500 keys."""
        wanted = {_index_key(k): k for k in keys}
        out: dict[str, dict[str, str]] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(wanted), 500):
                q = (select(contact_index.c.key, contact_index.c.contact_id, identities.c.name)
                     .join(identities, identities.c.identity_id == contact_index.c.contact_id)
                     .where(contact_index.c.kind == kind, contact_index.c.key.in_(chunk)).order_by(contact_index.c.key, contact_index.c.contact_id))
                for key, cid, name in conn.execute(q):
                    out.setdefault(wanted[key], {})[cid] = name or ""
        return out

    def count_contact_keys(self, kind: str) -> int:
        with self.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(contact_index).where(contact_index.c.kind == kind)).scalar() or 0

    def iter_contact_keys(self, kind: str, *, page: int = 2000) -> Iterator[str]:
        """Every key indexed under ``kind``, in order (paged)."""
        last = ""
        while True:
            with self.db.connect() as conn:
                keys = list(conn.execute(select(contact_index.c.key).where(contact_index.c.kind == kind, contact_index.c.key > last).order_by(contact_index.c.key).limit(page)).scalars())
            yield from keys
            if len(keys) < page:
                return
            last = keys[-1]

    def rows(self, *, source: str | None = None, contacts: bool | None = None) -> Iterator[tuple[Identity, str, bool, datetime | None, int]]:
        """``(identity, source, is_contact, updated_at, interactions authored)`` by id,
        filtered by source instance and contact-or-not (``crmsync identities``)."""
        with self.db.connect() as conn:
            counts = dict(conn.execute(select(interactions.c.author_id, func.count()).where(interactions.c.author_id.is_not(None)).group_by(interactions.c.author_id)).all())
            q = select(identities.c.record, identities.c.source, identities.c.is_contact, identities.c.updated_at).order_by(identities.c.identity_id)
            if source:
                q = q.where(identities.c.source == source)
            if contacts is not None:
                q = q.where(identities.c.is_contact.is_(contacts))
            for record, src, is_contact, updated in conn.execute(q):
                person = Identity.model_validate_json(record)
                yield person, src, bool(is_contact), updated, counts.get(person.identity_id, 0)

    def cluster(self, keys_by_author: dict[str, list[str]], *, write: bool = True) -> dict[str, str]:
        """One identity per person: author identity_id -> cluster identity_id.

        An author whose key (canonical email, URL, handle) was seen before joins
        that identity; its other keys join it too (``write=False``: the same answer,
        nothing stored, for dry runs).
        """
        all_keys = sorted({k for ks in keys_by_author.values() for k in ks})
        out: dict[str, str] = {}
        with self.db.begin() if write else self.db.connect() as conn:
            known: dict[str, str] = {}
            for chunk in chunks(all_keys, 500):
                for key, ident in conn.execute(select(identity_keys.c.key, identity_keys.c.identity_id).where(identity_keys.c.key.in_(chunk))):
                    known[key] = ident
            new_rows = []
            for author_id, keys in keys_by_author.items():
                owner = next((known[k] for k in keys if k in known), author_id)
                out[author_id] = owner
                for k in keys:
                    if k not in known:
                        known[k] = owner
                        new_rows.append({"key": k, "identity_id": owner})
            if write:
                write_rows(conn, identity_keys, new_rows)
        return out

    # the review queue --------------------------------------------------------
    def decisions(self) -> dict[str, dict[str, str]]:
        """author identity_id -> {contact identity_id: accepted|rejected}."""
        out: dict[str, dict[str, str]] = {}
        with self.db.connect() as conn:
            q = select(identity_candidates.c.author_id, identity_candidates.c.contact_id, identity_candidates.c.status).where(identity_candidates.c.status.in_(["accepted", "rejected"]))
            for a, c, st in conn.execute(q):
                out.setdefault(a, {})[c] = st
        return out

    def add_candidates(self, items: list[dict[str, Any]]) -> int:
        """Queue candidates for review; a pair already queued or decided is left alone."""
        if not items:
            return 0
        now = utcnow()
        added = 0
        with self.db.begin() as conn:
            for it in items:
                exists = conn.execute(select(identity_candidates.c.id).where(and_(identity_candidates.c.author_id == it["author_id"], identity_candidates.c.contact_id == it["contact_id"]))).first()
                if exists:
                    continue
                conn.execute(insert(identity_candidates).values(status="pending", created_at=now, applied=False, **it))
                added += 1
        return added

    def candidates(self, status: str | None = "pending") -> list[dict[str, Any]]:
        q = select(identity_candidates).order_by(identity_candidates.c.confidence.desc(), identity_candidates.c.id)
        if status:
            q = q.where(identity_candidates.c.status == status)
        with self.db.connect() as conn:
            return [
                {**dict(r._mapping), "evidence": json.loads(r.evidence), "author": json.loads(r.author), "created_at": aware(r.created_at).isoformat(), "decided_at": aware(r.decided_at).isoformat() if r.decided_at else None}
                for r in conn.execute(q)
            ]

    def decide(self, candidate_id: int, verdict: str) -> dict[str, Any] | None:
        with self.db.begin() as conn:
            row = conn.execute(select(identity_candidates).where(identity_candidates.c.id == candidate_id)).first()
            if row is None:
                return None
            conn.execute(update(identity_candidates).where(identity_candidates.c.id == candidate_id).values(status=verdict, decided_at=utcnow(), applied=False))
            if verdict == "accepted":
                # one author links to one contact: the other proposals for it are rejected
                conn.execute(
                    update(identity_candidates)
                    .where(and_(identity_candidates.c.author_id == row.author_id, identity_candidates.c.id != candidate_id, identity_candidates.c.status == "pending"))
                    .values(status="rejected", decided_at=utcnow())
                )
            return dict(row._mapping)

    def unapplied_decisions(self) -> int:
        with self.db.connect() as conn:
            q = select(func.count()).select_from(identity_candidates).where(and_(identity_candidates.c.status == "accepted", identity_candidates.c.applied.is_(False)))
            return conn.execute(q).scalar() or 0

    def mark_decisions_applied(self) -> None:
        with self.db.begin() as conn:
            conn.execute(update(identity_candidates).where(identity_candidates.c.status == "accepted").values(applied=True))


def upsert(conn: Connection, source: str, people: list[Identity], now: datetime) -> int:
    """Insert new people and merge what is new about known ones, inside the caller's
    transaction; returns how many rows changed."""
    if not people:
        return 0
    ids = [p.identity_id for p in people]
    current = {}
    for chunk in chunks(ids, 500):
        for row in conn.execute(select(identities.c.identity_id, identities.c.record).where(identities.c.identity_id.in_(chunk))):
            current[row[0]] = row[1]
    new_rows, upd_rows = [], []
    for person in people:
        old = current.get(person.identity_id)
        if old is None:
            new_rows.append({"identity_id": person.identity_id, "name": person.name, "source": source, "record": person.model_dump_json(), "updated_at": now, "is_contact": bool(person.crm_ids)})
            continue
        fresh = person.model_dump_json()
        if fresh == old:
            continue  # the same person as stored (most authors, most batches): nothing to merge
        merged = merge(Identity.model_validate_json(old), person)
        record = merged.model_dump_json()
        if record != old:
            upd_rows.append({"identity_id": person.identity_id, "name": merged.name, "record": record, "updated_at": now, "is_contact": bool(merged.crm_ids)})
    write_rows(conn, identities, new_rows)
    write_rows(conn, identities, upd_rows, where=("identity_id",))
    return len(new_rows) + len(upd_rows)


def merge(old: Identity, new: Identity) -> Identity:
    """``old`` with what ``new`` adds: more emails, handles, URLs, CRM ids; a newer name."""
    data = old.model_dump()
    for key in ("emails", "verified_emails", "handles", "profile_urls"):
        seen = list(data[key])
        for v in getattr(new, key):
            if v not in seen:
                seen.append(v)
        data[key] = seen
    data["crm_ids"] = {**data["crm_ids"], **new.crm_ids}
    for key in ("name", "company"):
        if getattr(new, key):
            data[key] = getattr(new, key)
    data["removed"] = new.removed
    return Identity.model_validate(data)


def _index_key(key: str) -> str:
    """A lookup key as ``contact_index`` holds it: one longer than its column is hashed."""
    if len(key) <= 400:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
