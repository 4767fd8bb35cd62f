"""The ``hubspot`` sink: interactions as notes on HubSpot contacts.

Why notes: a note takes any text, custom properties and an association to a
contact, and shows on the contact's timeline. HubSpot's *email* engagements
are for one-to-one mail logged by a sales rep (they need a direction, and
count in sales email reporting) and *communications* only cover WhatsApp,
LinkedIn and SMS; a public post or review is neither.

Per batch of up to 100 interactions:

1. **Contacts.** An author linked to a HubSpot contact (``crm_ids``, from the
   ``hubspot`` source or a contacts export) uses that record id: crmsync never
   creates a second contact for a linked author. Other authors are matched by
   ``contact_match``: ``email`` (default) or a unique-value contact property
   holding crmsync's identity id. ``contacts = "upsert"`` upserts them (batch
   upsert, one request per 100), ``"insert"`` creates only the missing ones,
   ``"update-only"`` only looks them up. An author with no email (and an
   ``email`` match) gets no contact: the note is left unassociated.
2. **Notes.** A new interaction is a note created with its association
   (batch create); the interaction id goes in ``id_property``, a custom note
   property. Before creating, the batch's ids are *searched* (one request per
   100): a note an earlier attempt created (its answer lost to a timeout, a
   dropped connection, a crash before the ledger, a reset ledger) is kept, not
   created again. Creates are also written down first in a small journal in
   the state directory: an id whose outcome is unknown and that the search
   does not find yet is searched again after ``search_lag`` seconds, since
   HubSpot's search index trails writes. An edit updates the note by its id
   (batch update) and re-associates it.
3. **Refusals.** A batch HubSpot refuses with a validation error (an unknown
   property, a value outside an enumeration's options) is split in halves
   until the refused inputs are alone: those are rejected with HubSpot's
   message (quarantined, retried next run) and the rest lands.

Text over HubSpot's 65,536-character property limit is cut at the end of the
text (the footer stays) with ``…[truncated]``, and the run report says how
many were.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import crmsync

from .api import BATCH_LIMIT, NOTE_TO_CONTACT, SEARCH_IN_LIMIT, SEARCH_LIMIT, ApiError, HubSpotApi

MAX_TEXT = 65_536
#: fields a note property may be mapped to (note_properties)

CONNECTION_SCHEMA: dict[str, Any] = {
    "access_token": {"type": "string", "secret": True, "description": "A private app's access token: env:NAME or file:PATH."},
    "base_url": {"type": "string", "default": "https://api.hubapi.com", "description": "API host: HubSpot's default, an EU data-centre host (https://api-eu1.hubapi.com) or a proxy. The API version is the client's (CRM v3 objects, v4 associations)."},
    "timeout": {"type": "number", "default": 30, "description": "Seconds to wait for one request."},
    "retry_attempts": {"type": "integer", "minimum": 1, "default": 6, "description": "Attempts per request on 429, 5xx and timeouts (Retry-After and the rate-limit headers are honoured)."},
    "crm": {"type": "string", "default": "hubspot", "description": "Name the contact record ids are kept under (Identity.crm_ids); the hubspot source and sink must agree."},
}


def make_api(plugin: crmsync.Sink | crmsync.Source) -> HubSpotApi:
    cfg = plugin.config
    return HubSpotApi(cfg["access_token"], cfg["base_url"], timeout=cfg["timeout"], attempts=cfg["retry_attempts"], max_wait=60.0, plugin=plugin.instance)


def _value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class HubSpotSink(crmsync.Sink):
    """Interactions as HubSpot notes associated with their authors' contacts."""

    name = "hubspot"
    description = "HubSpot CRM: interactions as notes on contacts (batch API, upsert by email), idempotent by a note property."
    batch_size = BATCH_LIMIT
    config_schema = {
        "type": "object",
        "properties": {
            **CONNECTION_SCHEMA,
            "contacts": {"type": "string", "enum": ["upsert", "update-only", "insert"], "default": "upsert", "description": "upsert: create or update the authors' contacts; update-only: never create one (notes of unknown authors stay unassociated); insert: create missing contacts, leave existing ones untouched."},
            "contact_match": {"type": "string", "default": "email", "description": "How unlinked authors are matched to contacts: email, or the name of a unique-value contact property that holds crmsync's identity id (then authors without email get contacts too). Linked authors always use their record id."},
            "id_property": {"type": "string", "default": "crmsync_interaction_id", "description": "The note property that holds the interaction id (single-line text; `crmsync validate` creates it with create_properties)."},
            "create_properties": {"type": "boolean", "default": False, "description": "Create missing custom properties (id_property, a custom contact_match) at validate and at the start of a run."},
            "note_properties": {"type": "object", "additionalProperties": {"type": "string", "enum": list(crmsync.ACTIVITY_FIELDS)}, "default": {}, "description": "More note properties: {hubspot_property = field}."},
            "search_before_create": {"type": "string", "enum": ["always", "unknown"], "default": "always", "description": "always: search for notes that already carry the batch's interaction ids before creating (one search request per 100; safe however receipts were lost); unknown: only where an earlier create's outcome is unknown (a journal in .crmsync/plugins; one machine per sink, ledgers never reset by hand)."},
            "search_lag": {"type": "number", "minimum": 0, "default": 5, "description": "Seconds to wait before searching again for a note whose create's outcome is unknown and that the first search did not find (HubSpot's search index trails writes by a few seconds)."},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": BATCH_LIMIT, "default": BATCH_LIMIT, "description": "Interactions per batch request (HubSpot's limit is 100)."},
        },
        "required": ["access_token"],
    }

    def open(self) -> None:
        self.batch_size = self.config["batch_size"]
        self.api = make_api(self)
        self.crm = self.config["crm"]
        self.id_prop = self.config["id_property"]
        self._cut = 0
        self._written = 0
        self.journal = crmsync.CreateJournal.for_sink(self, "hubspot-creates")
        self._ensure_properties(create=self.config["create_properties"])

    def check(self) -> list[str]:
        """What ``crmsync validate`` reports: the token works, the properties exist."""
        self.api = make_api(self)
        created = self._ensure_properties(create=self.config["create_properties"])
        lines = [f"token accepted by {self.api.base_url}; note property {self.config['id_property']!r} exists"]
        lines += [f"created property {p}" for p in created]
        return lines

    def _ensure_properties(self, *, create: bool) -> list[str]:
        wanted = [("notes", self.config["id_property"], False)]
        if self.config["contact_match"] != "email":
            wanted.append(("contacts", self.config["contact_match"], True))
        wanted += [("notes", p, None) for p in self.config["note_properties"]]
        made = []
        for obj, name, unique in wanted:
            found = self.api.get_property(obj, name)
            if found is not None:
                if unique and not found.get("hasUniqueValue"):
                    msg = f"contact property {name!r} must be a unique-value property to match contacts by it (HubSpot: Settings > Properties > {name} > 'Require unique values')"
                    raise crmsync.ConfigError(msg, plugin=self.instance)
                continue
            if create and unique is not None:
                self.api.create_property(obj, {
                    "name": name, "label": f"crmsync {name.replace('_', ' ')}", "type": "string", "fieldType": "text",
                    "groupName": "contactinformation" if obj == "contacts" else "note_information", **({"hasUniqueValue": True} if unique else {}),
                })
                made.append(f"{obj}.{name}")
                continue
            how = "set create_properties = true, or " if unique is not None else ""
            msg = f"HubSpot has no {obj[:-1]} property {name!r}: {how}create it in HubSpot (Settings > Properties > {obj.capitalize()}: single-line text{', unique values' if unique else ''})"
            raise crmsync.ConfigError(msg, plugin=self.instance)
        return made


    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        """Archive the contacts this sink created for these people: the ones HubSpot's
        upsert answered as new (or that a create made), kept in the plugin state
        directory. Contacts that existed before crmsync are the CRM's and stay."""
        created = self._created()
        if created is None:
            msg = "no record of the contacts this sink created is kept on this machine (no plugin state directory): check the person's contact in HubSpot by hand"
            raise NotImplementedError(msg)
        mine = [created[i] for i in identity_ids if i in created]
        for start in range(0, len(mine), 100):
            self.api.batch("contacts", "archive", {"inputs": [{"id": c} for c in mine[start : start + 100]]})
        for i in identity_ids:
            created.pop(i, None)
        self._save_created(created)
        return list(identity_ids)

    def _created_path(self) -> Any:
        state_dir = getattr(self.context, "state_dir", None)
        from pathlib import Path

        return Path(state_dir) / f"{self.instance}.created-contacts.json" if state_dir else None

    def _created(self) -> dict[str, str] | None:
        """identity id -> contact id of the contacts this sink created (``None``: not kept)."""
        path = self._created_path()
        if path is None:
            return None
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}

    def _save_created(self, created: dict[str, str]) -> None:
        path = self._created_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(created, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def _remember_created(self, pairs: dict[str, str]) -> None:
        if pairs:
            created = self._created()
            if created is not None:
                self._save_created({**created, **pairs})

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """Archive the notes of ``deletions`` (erasure), 100 per ``notes/batch/archive``
        call (HubSpot's limit). Archiving a note already gone succeeds, so a repeat is safe."""
        known = [d for d in deletions if d.external_id]
        for start in range(0, len(known), 100):
            chunk = known[start : start + 100]
            self.api.batch("notes", "archive", {"inputs": [{"id": d.external_id} for d in chunk]})
        return [d.interaction_id for d in known]

    def flush(self) -> list[crmsync.Receipt]:
        self.journal.next_write()
        if self._cut:
            self.note(f"cut {self._cut} note(s) to HubSpot's {MAX_TEXT}-character limit with …[truncated] at the end of the text")
            self._cut = 0
        if self._written:
            self.note(f"{self.api.requests} API requests for {self._written} records ({100 * self.api.requests / self._written:.1f} per 100)")
        return []

    def plan(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, int]:
        crm, match, mode = self.config["crm"], self.config["contact_match"], self.config["contacts"]
        out = {"notes to create": 0, "notes to update": 0, "notes on CRM-linked contacts": 0, "notes without a contact": 0}
        unlinked: set[str] = set()
        for d in deliveries:
            out["notes to update" if d.operation == "update" and d.external_id else "notes to create"] += 1
            a = d.author_profile or d.interaction.author
            if a is None or d.interaction.extra.get("business_reply"):
                out["notes without a contact"] += 1
            elif a.crm_ids.get(crm):
                out["notes on CRM-linked contacts"] += 1
            elif (a.emails if match == "email" else a.identity_id):
                unlinked.add((a.emails[0].lower() if match == "email" else a.identity_id) or "")
            else:
                out["notes without a contact"] += 1
        verb = {"upsert": "to upsert", "insert": "to look up, creating missing ones,", "update-only": "to look up (never created)"}[mode]
        out[f"contacts {verb} by {match}, notes associated with them"] = len(unlinked)
        return out

    # writing -----------------------------------------------------------------
    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        self.journal.next_write()
        self._written += len(deliveries)
        contacts = self._contacts(deliveries)
        props = {d.interaction.interaction_id: self._note_properties(d) for d in deliveries}
        receipts: list[crmsync.Receipt] = []
        creates: list[crmsync.Delivery] = []
        updates = [d for d in deliveries if d.operation == "update" and d.external_id]
        if updates:
            gone = self._update(updates, props, contacts, receipts)
            creates += gone
        creates += [d for d in deliveries if not (d.operation == "update" and d.external_id)]
        if creates:
            ids = [d.interaction.interaction_id for d in creates]
            unknown = set(self.journal.unknown(ids))
            search = ids if self.config["search_before_create"] == "always" else [i for i in ids if i in unknown]
            found = self._existing(search) if search else {}
            unsure = [i for i in search if i in unknown and i not in found] if self.journal.durable else []
            if unsure and self.config["search_lag"]:
                time.sleep(self.config["search_lag"])  # a note created just before a crash may not be searchable yet
                found.update(self._existing(unsure))
            fresh = []
            for d in creates:
                note = found.get(d.interaction.interaction_id)
                if note is not None:  # created by an attempt whose answer was lost
                    receipts.append(d.receipt(note))
                else:
                    fresh.append(d)
            if fresh:
                self.journal.sending([d.interaction.interaction_id for d in fresh])
                receipts += self._create(fresh, props, contacts)
        self.journal.returned()
        return receipts

    def _note_properties(self, d: crmsync.Delivery) -> dict[str, str | None]:
        i = d.interaction
        act = crmsync.activity_text(i, d.author_profile, max_body=MAX_TEXT // 2)
        # HubSpot renders a note's body as HTML: the text goes in escaped, its lines as <br>
        body = "<br>".join(html.escape(line) for line in f"{act.subject}\n\n{act.body}".split("\n"))
        if len(body) > MAX_TEXT:
            body = crmsync.truncate(body, MAX_TEXT, "…[truncated]")[0] or ""
            act = crmsync.Activity(act.subject, act.body, True)
        self._cut += act.truncated
        when = i.published or i.fetched
        props: dict[str, str | None] = {"hs_timestamp": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if when else None, "hs_note_body": body, self.id_prop: i.interaction_id}
        values = crmsync.activity_values(i, d.author_profile)
        for prop, field in self.config["note_properties"].items():
            v = _value(values[field])
            props[prop] = crmsync.truncate(v, MAX_TEXT, "…[truncated]")[0] if v else v
        return props

    def _update(self, updates: list[crmsync.Delivery], props: dict[str, dict[str, Any]], contacts: dict[str, str], receipts: list[crmsync.Receipt]) -> list[crmsync.Delivery]:
        """Update notes by id; returns the deliveries whose note is gone (created again)."""
        by_note = {d.external_id: d for d in updates}
        done: list[crmsync.Delivery] = []
        missing: set[str] = set()
        for chunk in _chunks(updates, BATCH_LIMIT):
            inputs = [{"id": d.external_id, "properties": {k: v for k, v in props[d.interaction.interaction_id].items() if v is not None}} for d in chunk]
            ok = self._send("update", chunk, inputs)
            for status_body in ok:
                for r in status_body.get("results", []):
                    done.append(by_note[r["id"]])
                for e in status_body.get("errors", []):
                    missing.update((e.get("context") or {}).get("ids", []))
        pairs = [(d.external_id, contacts[d.interaction.interaction_id]) for d in done if d.interaction.interaction_id in contacts]
        for chunk in _chunks(pairs, BATCH_LIMIT):
            self.api.associate_default(chunk)
        receipts += [d.receipt(d.external_id) for d in done]
        return [by_note[n] for n in missing if n in by_note]

    def _create(self, fresh: list[crmsync.Delivery], props: dict[str, dict[str, Any]], contacts: dict[str, str]) -> list[crmsync.Receipt]:
        out = []
        for chunk in _chunks(fresh, BATCH_LIMIT):
            inputs = []
            for d in chunk:
                iid = d.interaction.interaction_id
                inp: dict[str, Any] = {"properties": {k: v for k, v in props[iid].items() if v is not None}}
                if iid in contacts:
                    inp["associations"] = [{"to": {"id": contacts[iid]}, "types": [NOTE_TO_CONTACT]}]
                inputs.append(inp)
            by_id = {d.interaction.interaction_id: d for d in chunk}
            for body in self._send("create", chunk, inputs):
                for r in body.get("results", []):
                    d = by_id[r["properties"][self.id_prop]]
                    out.append(d.receipt(r["id"]))
        return out

    def _send(self, op: str, chunk: list[crmsync.Delivery], inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One batch request; a validation error splits it until the refused inputs are alone."""
        try:
            return [self.api.batch("notes", op, {"inputs": inputs}, repeatable=op != "create")[1] or {}]
        except ApiError as exc:
            if exc.status not in (400, 409) or exc.category not in ("VALIDATION_ERROR", "CONFLICT", None):
                raise
            if len(chunk) == 1:
                self.reject(chunk[0], str(exc.message), request={"endpoint": f"POST /crm/v3/objects/notes/batch/{op}", "inputs": inputs}, response={"status": exc.status, "body": exc.body})
                return []
            half = len(chunk) // 2
            return self._send(op, chunk[:half], inputs[:half]) + self._send(op, chunk[half:], inputs[half:])

    def _existing(self, interaction_ids: list[str]) -> dict[str, str]:
        """Notes that already carry these interaction ids (search)."""
        found: dict[str, str] = {}
        for chunk in _chunks(interaction_ids, SEARCH_IN_LIMIT):
            after: str | None = None
            while True:
                body: dict[str, Any] = {"filterGroups": [{"filters": [{"propertyName": self.id_prop, "operator": "IN", "values": chunk}]}], "properties": [self.id_prop], "limit": SEARCH_LIMIT}
                if after:
                    body["after"] = after
                page = self.api.search("notes", body)
                for r in page.get("results", []):
                    found.setdefault(r["properties"][self.id_prop], r["id"])
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return found

    # contacts ----------------------------------------------------------------
    def _contacts(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, str]:
        """Contact record id per interaction id, for the authors that have (or get) one."""
        match = self.config["contact_match"]
        mode = self.config["contacts"]
        authors: dict[str, crmsync.Identity] = {}
        contact_of: dict[str, str] = {}
        for d in deliveries:
            a = d.author_profile or d.interaction.author
            if a is not None and a.identity_id and not d.interaction.extra.get("business_reply"):  # the company itself: no contact
                authors.setdefault(a.identity_id, a)
        linked = {k: a.crm_ids[self.crm] for k, a in authors.items() if a.crm_ids.get(self.crm)}
        contact_of.update(linked)
        keyed: dict[str, tuple[str, crmsync.Identity]] = {}  # match value -> (identity id, author)
        for k, a in authors.items():
            if k in linked:
                continue
            value = (a.emails[0].strip() if a.emails else None) if match == "email" else k
            if value:
                keyed.setdefault(value.lower() if match == "email" else value, (k, a))
        if keyed:
            if mode == "upsert":
                found = self._upsert_contacts(match, keyed)
            else:
                found = self._read_contacts(match, list(keyed))
                if mode == "insert":
                    found.update(self._create_contacts(match, {v: ka for v, ka in keyed.items() if v not in found}))
            for value, (k, _a) in keyed.items():
                if value in found:
                    contact_of[k] = found[value]
        out = {}
        for d in deliveries:
            a = d.author_profile or d.interaction.author
            if a is not None and a.identity_id in contact_of and not d.interaction.extra.get("business_reply"):
                out[d.interaction.interaction_id] = contact_of[a.identity_id]
        return out

    @staticmethod
    def _contact_properties(a: crmsync.Identity) -> dict[str, str]:
        parts = (a.name or "").split()
        props = {"email": a.emails[0] if a.emails else None, "firstname": " ".join(parts[:-1]) if len(parts) > 1 else None, "lastname": parts[-1] if parts else None, "company": a.company, "website": a.profile_urls[0] if a.profile_urls else None}
        return {k: v[:MAX_TEXT] for k, v in props.items() if v}

    def _upsert_contacts(self, match: str, keyed: dict[str, tuple[str, crmsync.Identity]]) -> dict[str, str]:
        found: dict[str, str] = {}
        items = list(keyed.items())
        for chunk in _chunks(items, BATCH_LIMIT):
            inputs = [{"idProperty": match, "id": a.emails[0].strip() if match == "email" else value, "properties": self._contact_properties(a)} for value, (_k, a) in chunk]
            _status, body = self.api.batch("contacts", "upsert", {"inputs": inputs})
            new: dict[str, str] = {}
            for r in (body or {}).get("results", []):
                key = r["properties"].get(match)
                if key:
                    found[key.lower() if match == "email" else key] = r["id"]
                    if r.get("new"):  # HubSpot says this upsert made the contact: crmsync's to erase later
                        ident = keyed.get(key.lower() if match == "email" else key)
                        if ident is not None:
                            new[ident[0]] = r["id"]
            self._remember_created(new)
        return found

    def _read_contacts(self, match: str, values: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(values, BATCH_LIMIT):
            _status, body = self.api.batch("contacts", "read", {"idProperty": match, "inputs": [{"id": v} for v in chunk], "properties": [match]})
            for r in (body or {}).get("results", []):
                key = r["properties"].get(match)
                if key:
                    found[key.lower() if match == "email" else key] = r["id"]
        return found

    def _create_contacts(self, match: str, keyed: dict[str, tuple[str, crmsync.Identity]]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(keyed.items()), BATCH_LIMIT):
            inputs = [{"properties": {**self._contact_properties(a), **({} if match == "email" else {match: value})}} for value, (_k, a) in chunk]
            try:
                _status, body = self.api.batch("contacts", "create", {"inputs": inputs}, repeatable=False)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                # created meanwhile (another run, a lost answer): read them back instead
                found.update(self._read_contacts(match, [v for v, _ka in chunk]))
                continue
            new: dict[str, str] = {}
            for r in (body or {}).get("results", []):
                key = r["properties"].get(match)
                if key:
                    found[key.lower() if match == "email" else key] = r["id"]
                    ident = keyed.get(key.lower() if match == "email" else key)
                    if ident is not None:
                        new[ident[0]] = r["id"]
            self._remember_created(new)
        return found


def _chunks(items: Sequence[Any], size: int) -> list[Any]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


__all__ = ["HubSpotSink", "make_api"]
