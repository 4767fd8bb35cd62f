"""The ``tryton`` sink: each interaction as a note (``ir.note``) on its party.

Per batch, a handful of JSON-RPC calls:

1. **Parties.** An author identity linked to a Tryton party (``crm_ids``,
   from the ``tryton`` source) uses it. Any other author is looked up by the
   identifier crmsync gives the parties it creates (``crmsync:IDENTITY_ID``),
   then by email contact mechanism (case-insensitive; the lowest id wins when
   several parties share one). Not found: created with that identifier
   (``contacts = "upsert"`` or ``"insert"``), so a re-sent batch finds it
   instead of creating a second party. Authors without an email get a party
   only with ``contacts_without_email = "create"``; otherwise their notes go
   to the ``unmatched_party`` when one is configured, else they are invalid
   (quarantined, retried next run).
2. **Notes.** Every note ends with a marker line, ``[crmsync:INTERACTION_ID
   vVERSION]``. The batch's markers are searched first (a new interaction's
   among the notes of the parties it goes to, an edited one's everywhere,
   since a relinked author's note moves): a note with the same
   text on the same party (an earlier attempt whose answer was lost, or a new
   version that changes nothing a note shows, such as the author's link to
   the party) is kept, not created again.
3. **Edits.** Tryton refuses to change a note's message, so an edited
   interaction gets a new note and the older version's note is deleted
   *after* the new one exists. A crash between the two leaves both for a
   moment, never none; the re-sent delivery finds the new note by its marker
   and deletes the old one, so the run that completes leaves exactly one.

A batch Tryton refuses as a whole (one bad row fails its transaction) is
sent again row by row, so only the refused rows are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import crmsync

from .client import TrytonClient, TrytonUserError, escape_like

_MARKER = re.compile(r"\[crmsync:([0-9a-f-]{36}) v(\d+)\]\s*$")
UNMATCHED_CODE = "crmsync:unmatched"


def marker(interaction_id: str, version: int) -> str:
    """The line that ends every note crmsync writes."""
    return f"[crmsync:{interaction_id} v{version}]"


def party_code(identity_id: str) -> str:
    """The party identifier of an author crmsync created a party for."""
    return f"crmsync:{identity_id}"


CONNECTION_SCHEMA: dict[str, Any] = {
    "url": {"type": "string", "description": "The Tryton server's root URL, e.g. http://erp.example:8000 (JSON-RPC goes to URL/DATABASE/rpc/)."},
    "database": {"type": "string", "description": "The database name (trytond must serve it: -d NAME)."},
    "username": {"type": "string", "default": "admin", "description": "The sync user (see the README for the access rights it needs)."},
    "password": {"type": "string", "secret": True, "description": "The user's password: env:NAME or file:PATH."},
    "timeout": {"type": "number", "default": 60, "description": "Seconds to wait for one call."},
    "crm": {"type": "string", "default": "tryton", "description": "Name the party ids are kept under (Identity.crm_ids); the tryton source and sink must agree."},
}


def make_client(plugin: crmsync.Sink | crmsync.Source) -> TrytonClient:
    cfg = plugin.config
    return TrytonClient(cfg["url"], cfg["database"], cfg["username"], cfg["password"].get(), timeout=cfg["timeout"], plugin=plugin.instance)


class TrytonSink(crmsync.Sink):
    """Interactions as notes on Tryton parties, over JSON-RPC."""

    name = "tryton"
    description = "Tryton (a self-hosted ERP/CRM): interactions as notes on parties, parties found by email or created; over JSON-RPC."
    batch_size = 100
    config_schema = {
        "type": "object",
        "properties": {
            **CONNECTION_SCHEMA,
            "contacts": {
                "type": "string",
                "enum": ["upsert", "update-only", "insert"],
                "default": "upsert",
                "description": "upsert: use the author's party, creating it when none matches; update-only: never create a party (unmatched authors go to unmatched_party or are invalid); insert: as upsert (crmsync never edits an existing party).",
            },
            "contacts_without_email": {"type": "string", "enum": ["skip", "create"], "default": "skip", "description": "Authors with no email and no linked party: create a party for them (create), or not (skip: their notes go to unmatched_party, else they are invalid)."},
            "unmatched_party": {"type": "string", "description": "Name of a party (created once, found again by its identifier crmsync:unmatched) that holds the notes of authors without a party of their own."},
            "search_before_create": {"type": "string", "enum": ["always", "unknown"], "default": "always", "description": "always: look for the batch's notes by their marker before creating (safe however receipts were lost; a scan of the parties' notes); unknown: only for creates whose outcome is unknown (a journal in .crmsync/plugins; one machine per sink, ledgers never reset by hand)."},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100, "description": "Interactions per write (a few JSON-RPC calls each)."},
            "max_note_chars": {"type": "integer", "minimum": 1000, "default": 100000, "description": "Longer notes are cut at the end of the text with …[truncated] (the footer and marker are kept)."},
        },
        "required": ["url", "database", "password"],
    }

    def open(self) -> None:
        self.batch_size = self.config["batch_size"]
        self.client = make_client(self)
        self.crm = self.config["crm"]
        self._unmatched: int | None = None
        self._cut = 0
        self._written = 0
        self.journal = crmsync.CreateJournal.for_sink(self, "tryton-creates")

    def check(self) -> list[str]:
        """Log in and read one party and one note: what ``crmsync validate`` reports."""
        self.open()
        try:
            self.client.login()
            self.client.model("party.party", "search", [], 0, 1, None)
            self.client.model("ir.note", "search", [["id", "=", -1]], 0, 1, None)
            return [f"logged in to {self.client.endpoint} as {self.config['username']!r}; parties and notes readable"]
        finally:
            self.close()

    def plan(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, int]:
        crm, mode = self.config["crm"], self.config["contacts"]
        out = {"notes to create": 0, "notes to replace (edited: new note, then the old one deleted)": 0, "notes on CRM-linked parties": 0}
        by_email: set[str] = set()
        nowhere = 0
        for d in deliveries:
            out["notes to replace (edited: new note, then the old one deleted)" if d.operation == "update" else "notes to create"] += 1
            a = d.author_profile or d.interaction.author
            if a is not None and a.crm_ids.get(crm):
                out["notes on CRM-linked parties"] += 1
            elif a is not None and a.identity_id and not d.interaction.extra.get("business_reply") and (a.emails or self.config["contacts_without_email"] == "create"):
                by_email.add(a.identity_id)
            else:
                nowhere += 1
        out["authors' parties found by email" + ("" if mode == "update-only" else " or created")] = len(by_email)
        out[f"notes on the unmatched party {self.config['unmatched_party']!r}" if self.config.get("unmatched_party") else "notes with no party (invalid: quarantined)"] = nowhere
        return out

    # writing ---------------------------------------------------------------
    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        self._written += len(deliveries)
        parties = self._parties(deliveries)
        # a new interaction's note, if an earlier attempt wrote it, is on the party the same
        # resolution gives now: only those parties' notes are scanned. Searched everywhere:
        # an update's note (a relinked author's note moves) and a create whose outcome is
        # unknown (a crash's: the author may have changed parties since)
        self.journal.next_write()
        fresh = [d.interaction.interaction_id for d in deliveries if d.operation == "create" and d.interaction.interaction_id in parties]
        unknown = set(self.journal.unknown(fresh)) if self.journal.durable else set()
        if self.config["search_before_create"] == "unknown":
            fresh = [i for i in fresh if i in unknown] if self.journal.durable else fresh
        near = [i for i in fresh if i not in unknown]
        existing = self._notes_of(near, [f"party.party,{parties[i]}" for i in near]) if near else {}
        anywhere = [i for i in fresh if i in unknown] + [d.interaction.interaction_id for d in deliveries if d.operation != "create"]
        if anywhere:
            existing.update(self._notes_of(anywhere, []))
        receipts: list[crmsync.Receipt] = []
        create: list[tuple[crmsync.Delivery, dict[str, Any]]] = []
        stale: dict[str, list[int]] = {}
        for d in deliveries:
            iid = d.interaction.interaction_id
            party = parties.get(iid)
            if party is None:
                continue  # rejected as invalid by _parties
            resource = f"party.party,{party}"
            message = self._message(d)
            text = _without_marker(message)
            notes = existing.get(iid, [])
            # a note with this text on this party is this delivery's (an earlier attempt, or a
            # new version that changed nothing a note shows, such as the author's CRM link)
            current = next((n for n in notes if n["resource"] == resource and n["text"] == text), None)
            stale[iid] = [n["id"] for n in notes if n is not current]
            if current is not None:
                receipts.append(d.receipt(str(current["id"])))
            else:
                create.append((d, {"resource": resource, "message": message}))
        self.journal.sending([d.interaction.interaction_id for d, _v in create])
        receipts.extend(self._create(create))
        # old versions go only once their replacement exists (a crash in between leaves two, never none)
        done = {r.interaction_id for r in receipts}
        old = [n for iid, ids in stale.items() if iid in done for n in ids]
        if old:
            self.client.model("ir.note", "delete", old)
        self.journal.returned()
        return receipts

    def flush(self) -> list[crmsync.Receipt]:
        self.journal.next_write()
        if self._cut:
            self.note(f"cut {self._cut} note(s) to max_note_chars ({self.config['max_note_chars']}) with …[truncated]")
            self._cut = 0
        if self._written:
            self.note(f"{self.client.requests} JSON-RPC calls for {self._written} records ({100 * self.client.requests / self._written:.1f} per 100)")
        return []

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """Delete the notes of ``deletions`` (erasure): every note that carries their
        marker, wherever it is (a relinked author's note moved), in batches."""
        ids = [d.interaction_id for d in deletions]
        for start in range(0, len(ids), 50):
            chunk = ids[start : start + 50]
            notes = [n["id"] for found in self._notes_of(chunk, []).values() for n in found]
            if notes:
                self.client.model("ir.note", "delete", notes)
        return ids

    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        """Delete the parties crmsync created for these people (the ones with its
        ``crmsync:<identity id>`` identifier); parties the CRM had before are left alone."""
        codes = {party_code(i): i for i in identity_ids}
        rows = self.client.model("party.identifier", "search_read", [["code", "in", sorted(codes)]], 0, None, [["id", "ASC"]], ["party", "code"])
        parties = sorted({int(r["party"]) for r in rows})
        if parties:
            self.client.model("party.party", "delete", parties)
        return list(identity_ids)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()

    def _message(self, d: crmsync.Delivery) -> str:
        act = crmsync.activity_text(d.interaction, d.author_profile, max_body=self.config["max_note_chars"] - 200)
        self._cut += act.truncated
        return f"{act.subject}\n\n{act.body}\n\n{marker(d.interaction.interaction_id, d.version)}"

    def _create(self, rows: list[tuple[crmsync.Delivery, dict[str, Any]]]) -> list[crmsync.Receipt]:
        if not rows:
            return []
        try:
            ids = self.client.model("ir.note", "create", [v for _d, v in rows])
            return [d.receipt(str(n)) for (d, _v), n in zip(rows, ids, strict=True)]
        except TrytonUserError as exc:
            if len(rows) == 1:
                d, values = rows[0]
                self.reject(d, exc.message, request={"method": "model.ir.note.create", "values": values}, response={"error": exc.message})
                return []
        # one refused row fails the whole call: find it, send the rest
        out: list[crmsync.Receipt] = []
        for row in rows:
            try:
                (n,) = self.client.model("ir.note", "create", [row[1]])
                out.append(row[0].receipt(str(n)))
            except TrytonUserError as exc:
                self.reject(row[0], exc.message, request={"method": "model.ir.note.create", "values": row[1]}, response={"error": exc.message})
        return out

    def _notes_of(self, interaction_ids: list[str], resources: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The notes that carry these interactions' markers, by interaction id: those on
        ``resources`` (the batch's parties: an index narrows the scan), plus, for an
        interaction whose note moved (a relink), anywhere."""
        if not interaction_ids:
            return {}
        # no space in the pattern: on PostgreSQL, trytond 8.2 finds nothing for an ilike with one
        domain: list[Any] = ["OR", *(["message", "ilike", f"%{escape_like(f'[crmsync:{i}')}%"] for i in interaction_ids)]
        if resources:
            domain = [["resource", "in", sorted(set(resources))], domain]
        found: dict[str, list[dict[str, Any]]] = {}
        for n in self.client.model("ir.note", "search_read", domain, 0, None, [["id", "ASC"]], ["message", "resource"]):
            m = _MARKER.search(n["message"] or "")
            if m:
                found.setdefault(m.group(1), []).append({"id": n["id"], "version": int(m.group(2)), "resource": n["resource"], "text": _without_marker(n["message"])})
        return found

    # parties ---------------------------------------------------------------
    def _parties(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, int]:
        """The party of each delivery's author; authors without one are rejected as invalid."""
        authors: dict[str, crmsync.Identity] = {}
        by_delivery: dict[str, str | None] = {}
        for d in deliveries:
            a = d.author_profile or d.interaction.author
            # a business's public reply to a review is the company speaking: not a contact
            key = a.identity_id if a is not None and a.identity_id and not d.interaction.extra.get("business_reply") else None
            by_delivery[d.interaction.interaction_id] = key
            if key:
                authors.setdefault(key, a)
        party_of = self._find_parties(authors)
        mode = self.config["contacts"]
        missing = [k for k in authors if k not in party_of]
        creatable = [k for k in missing if mode != "update-only" and (authors[k].emails or self.config["contacts_without_email"] == "create")]
        if creatable:
            party_of.update(self._create_parties({k: authors[k] for k in creatable}))
        out: dict[str, int] = {}
        for d in deliveries:
            key = by_delivery[d.interaction.interaction_id]
            party = party_of.get(key) if key else None
            if party is None and self.config.get("unmatched_party"):
                party = self._unmatched_party()
            if party is None:
                why = ("it is a business's reply, which has no contact" if d.interaction.extra.get("business_reply") else "it has no author") if key is None else (
                    "update-only mode never creates a party and none matches the author" if mode == "update-only"
                    else "the author has no email and contacts_without_email is 'skip'"
                )
                self.reject(d, f"no Tryton party to put the note on: {why}; set unmatched_party to collect such notes", invalid=True)
                continue
            out[d.interaction.interaction_id] = party
        return out

    def _find_parties(self, authors: dict[str, crmsync.Identity]) -> dict[str, int]:
        found: dict[str, int] = {}
        linked = {k: a.crm_ids[self.crm] for k, a in authors.items() if a.crm_ids.get(self.crm, "").isdigit()}
        if linked:
            alive = set(self.client.model("party.party", "search", [["id", "in", sorted({int(v) for v in linked.values()})]], 0, None, None))
            for k, v in linked.items():
                if int(v) in alive:
                    found[k] = int(v)
                else:
                    self.note(f"party {v} linked to an author is gone from Tryton (deleted or deactivated): matched again by email")
        rest = {k: a for k, a in authors.items() if k not in found}
        if rest:
            codes = {party_code(k): k for k in rest}
            for row in self.client.model("party.identifier", "search_read", [["code", "in", sorted(codes)]], 0, None, [["id", "ASC"]], ["party", "code"]):
                found.setdefault(codes[row["code"]], row["party"])
        rest = {k: a for k, a in rest.items() if k not in found and a.emails}
        if rest:
            wanted = {e.casefold(): k for k, a in rest.items() for e in reversed(a.emails)}
            domain = [["type", "=", "email"], ["OR", *(["value", "ilike", escape_like(e)] for e in sorted(wanted))]]
            for row in self.client.model("party.contact_mechanism", "search_read", domain, 0, None, [["party", "ASC"]], ["party", "value"]):
                k = wanted.get((row["value"] or "").casefold())
                if k is not None and k not in found:
                    found[k] = row["party"]
        return found

    def _create_parties(self, authors: dict[str, crmsync.Identity]) -> dict[str, int]:
        values = []
        for k, a in authors.items():
            mechanisms = [{"type": "email", "value": e} for e in a.emails[:3]] + [{"type": "website", "value": u} for u in a.profile_urls[:1]]
            values.append({
                "name": (a.name or (a.emails[0] if a.emails else None) or (a.handles[0] if a.handles else None) or "crmsync author")[:200],
                "identifiers": [["create", [{"type": None, "code": party_code(k)}]]],
                **({"contact_mechanisms": [["create", mechanisms]]} if mechanisms else {}),
            })
        ids = self.client.model("party.party", "create", values)
        return dict(zip(authors, ids, strict=True))

    def _unmatched_party(self) -> int:
        if self._unmatched is None:
            rows = self.client.model("party.identifier", "search_read", [["code", "=", UNMATCHED_CODE]], 0, 1, [["id", "ASC"]], ["party"])
            if rows:
                self._unmatched = rows[0]["party"]
            else:
                (self._unmatched,) = self.client.model("party.party", "create", [{"name": self.config["unmatched_party"], "identifiers": [["create", [{"type": None, "code": UNMATCHED_CODE}]]]}])
        return self._unmatched


def _without_marker(message: str) -> str:
    return _MARKER.sub("", message or "").rstrip()


__all__ = ["TrytonSink", "marker", "party_code"]
