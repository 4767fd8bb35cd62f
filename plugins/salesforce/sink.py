"""The ``salesforce`` sink: interactions as Tasks on their authors' Contacts or Leads.

Every write is an *upsert by an external id*, so a batch sent again after a
crash, a timeout or a lost receipt updates the records it already created:
nothing to search, nothing twice.

Per batch (``batch_size``, 200 by default):

1. **Who.** An author linked to a Salesforce record (``crm_ids``, from the
   ``salesforce`` source or a contacts export) is the Task's ``WhoId``; no
   record is written for them. Other authors are looked up by email among
   Contacts, then Leads (``contact_match = "email"``), and the rest are
   upserted as ``new_authors`` (``Lead`` by default, or ``Contact``) by
   ``contact_external_id`` holding crmsync's identity id
   (``contacts = "upsert"``; ``"insert"`` creates only records that do not
   exist yet; ``"update-only"`` and ``new_authors = "skip"`` create none and
   leave the Task without ``WhoId``).
2. **Tasks.** Upserted by ``task_external_id`` (the interaction id) through
   sObject Collections, 200 per request with ``allOrNone`` false, or as one
   Bulk API 2.0 job when a batch holds at least ``bulk_threshold`` records
   (set ``batch_size`` that high to use it). Each record's result is its own:
   a refused Task (``STRING_TOO_LONG``, ``INVALID_FIELD``, a ``WhoId`` that no
   longer exists) is quarantined with Salesforce's errors and retried next
   run; the others land.

Subject (255) and Description (32,000) are cut to Salesforce's limits with
``…[truncated]`` at the end of the text (the footer with the link stays).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import crmsync

from .api import AUTH_SCHEMA, COLLECTION_LIMIT, ApiError, SalesforceApi, soql_list

SUBJECT_MAX, DESCRIPTION_MAX = 255, 32_000


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _split_name(a: crmsync.Identity) -> tuple[str | None, str]:
    parts = (a.name or "").split()
    if len(parts) > 1:
        return " ".join(parts[:-1])[:40], parts[-1][:80]
    if parts:
        return None, parts[0][:80]
    fallback = (a.emails[0].split("@", 1)[0] if a.emails else None) or (a.handles[0].split(":", 1)[-1] if a.handles else None) or "[unknown]"
    return None, fallback[:80]


class SalesforceSink(crmsync.Sink):
    """Interactions as Salesforce Tasks (upsert by external id) on Contacts or Leads."""

    name = "salesforce"
    description = "Salesforce: interactions as Tasks upserted by an external id (sObject Collections, Bulk API 2.0), WhoId from the matched Contact or Lead."
    batch_size = COLLECTION_LIMIT
    config_schema = {
        "type": "object",
        "properties": {
            **AUTH_SCHEMA,
            "task_external_id": {"type": "string", "default": "Crmsync_Id__c", "description": "External ID text field on Task (Activity) that holds the interaction id."},
            "contact_external_id": {"type": "string", "default": "Crmsync_Id__c", "description": "External ID text field on Lead/Contact that holds crmsync's identity id."},
            "new_authors": {"type": "string", "enum": ["Lead", "Contact", "skip"], "default": "Lead", "description": "What an author with no Salesforce record becomes (skip: the Task has no WhoId)."},
            "contacts": {"type": "string", "enum": ["upsert", "update-only", "insert"], "default": "upsert", "description": "upsert: create or update the new authors' records; insert: create only missing ones; update-only: never create (Tasks of unknown authors have no WhoId)."},
            "contact_match": {"type": "string", "enum": ["email", "external_id"], "default": "email", "description": "email: look unlinked authors up by email (Contacts, then Leads) before creating; external_id: only by contact_external_id."},
            "task_fields": {"type": "object", "additionalProperties": {"type": "string", "enum": list(crmsync.ACTIVITY_FIELDS)}, "default": {}, "description": "More Task fields: {Field__c = field}."},
            "task_status": {"type": "string", "default": "Completed", "description": "Task Status picklist value."},
            "bulk_threshold": {"type": "integer", "minimum": 1, "default": 2000, "description": "A batch of at least this many goes as one Bulk API 2.0 job (raise batch_size to reach it)."},
            "bulk_poll": {"type": "number", "minimum": 0, "default": 5, "description": "Seconds between Bulk API job status checks."},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": COLLECTION_LIMIT, "description": "Interactions per write (Collections take 200 a request)."},
        },
    }

    def open(self) -> None:
        self.batch_size = self.config["batch_size"]
        self.api = SalesforceApi(self)
        self.crm = self.config["crm"]
        self._cut = 0
        self._written = 0
        self._outcomes = {"created": 0, "updated": 0}

    def check(self) -> list[str]:
        """What ``crmsync validate`` reports: the login works, the external-id fields exist."""
        self.api = SalesforceApi(self)
        needed = {"Task": [(self.config["task_external_id"], True), *((f, False) for f in self.config["task_fields"])]}
        if self.config["new_authors"] != "skip":
            needed[self.config["new_authors"]] = [(self.config["contact_external_id"], True)]
        for sobject, fields in needed.items():
            described = {f["name"]: f for f in self.api.describe(sobject)["fields"]}
            for field, external in fields:
                f = described.get(field)
                if f is None or (external and not f.get("externalId")):
                    what = "an External ID, Unique text field (255)" if external else "a field"
                    msg = f"Salesforce {sobject} has no {field!r} {'External ID field' if f is not None else 'field'}: create {what} named {field} (Setup > Object Manager > {'Activity' if sobject == 'Task' else sobject} > Fields & Relationships > New) and give the integration user access to it"
                    raise crmsync.ConfigError(msg, plugin=self.instance)
        return [f"logged in to {self.api.instance_url} (API {self.config['api_version']}); external id fields present on {', '.join(needed)}"]

    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        """Delete the Leads (or Contacts) crmsync created for these people: those whose
        external id field holds the identity id. Records without it are the CRM's own."""

        field = self.config["contact_external_id"]
        ids: list[str] = []
        for sobject in ("Lead", "Contact"):
            for start in range(0, len(identity_ids), 200):
                chunk = list(identity_ids[start : start + 200])
                ids += [r["Id"] for r in self.api.query_all(f"SELECT Id FROM {sobject} WHERE {field} IN ({soql_list(chunk)})")]
        for start in range(0, len(ids), 200):
            self.api.delete_collection(ids[start : start + 200])
        return list(identity_ids)

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """Delete the records of ``deletions`` (erasure) through sObject Collections, 200
        ids a call; a record already deleted counts as gone (a repeat is safe)."""
        by_id = {d.external_id: d.interaction_id for d in deletions if d.external_id}
        gone: list[str] = []
        ids = list(by_id)
        for start in range(0, len(ids), 200):
            for res in self.api.delete_collection(ids[start : start + 200]) or []:
                codes = {e.get("statusCode") for e in res.get("errors") or []}
                if res.get("success") or codes & {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"}:
                    gone.append(by_id[res["id"]])
        return gone

    def flush(self) -> list[crmsync.Receipt]:
        if self._cut:
            self.note(f"cut {self._cut} Task subject(s)/description(s) to Salesforce's limits with …[truncated]")
            self._cut = 0
        if self._written:
            self.note(f"Salesforce: {self._outcomes['created']} Task(s) created, {self._outcomes['updated']} updated (per-record upsert results)")
            self.note(f"{self.api.requests} API requests for {self._written} records ({100 * self.api.requests / self._written:.1f} per 100)")
        return []

    def plan(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, int]:
        crm, new = self.config["crm"], self.config["new_authors"]
        out = {"Tasks to upsert (new)": 0, "Tasks to upsert (changed)": 0, "Tasks with WhoId from a CRM-linked record": 0, "Tasks without WhoId": 0}
        unlinked: set[str] = set()
        for d in deliveries:
            out["Tasks to upsert (changed)" if d.operation == "update" else "Tasks to upsert (new)"] += 1
            a = d.author_profile or d.interaction.author
            if a is None or not a.identity_id or d.interaction.extra.get("business_reply"):
                out["Tasks without WhoId"] += 1
            elif a.crm_ids.get(crm):
                out["Tasks with WhoId from a CRM-linked record"] += 1
            else:
                unlinked.add(a.identity_id)
        how = "looked up by email, else " if self.config["contact_match"] == "email" else ""
        what = "left without WhoId" if new == "skip" or self.config["contacts"] == "update-only" else f"upserted as {new}s by {self.config['contact_external_id']}"
        out[f"other authors {how}{what}"] = len(unlinked)
        return out

    # writing -----------------------------------------------------------------
    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        self._written += len(deliveries)
        who = self._who(deliveries)
        tasks: list[tuple[crmsync.Delivery, dict[str, Any]]] = []
        for d in deliveries:
            iid = d.interaction.interaction_id
            if isinstance(who.get(iid), crmsync.SinkRejection):
                r = who[iid]
                self.reject(d, r.reason, request=(r.detail or {}).get("request"), response=(r.detail or {}).get("response"))
                continue
            tasks.append((d, self._task(d, who.get(iid))))
        field = self.config["task_external_id"]
        if len(tasks) >= self.config["bulk_threshold"]:
            return self._bulk(tasks, field)
        receipts = []
        for chunk in _chunks(tasks, COLLECTION_LIMIT):
            results = self.api.upsert_collection("Task", field, [t for _d, t in chunk])
            for (d, task), res in zip(chunk, results, strict=True):
                if res.get("success"):
                    receipts.append(d.receipt(res["id"]))
                    self._outcomes["created" if res.get("created") else "updated"] += 1
                else:
                    self.reject(d, "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in res.get("errors", [])), request={"endpoint": f"PATCH composite/sobjects/Task/{field}", "record": task}, response=res)
        return receipts

    def _bulk(self, tasks: list[tuple[crmsync.Delivery, dict[str, Any]]], field: str) -> list[crmsync.Receipt]:
        columns = sorted({k for _d, t in tasks for k in t})
        # Bulk CSV: an empty cell leaves a field as it is; #N/A would clear it
        rows = [{c: ("" if t.get(c) is None else str(t[c])) for c in columns} for _d, t in tasks]
        ok, failed = self.api.bulk_upsert("Task", field, rows, self.config["bulk_poll"])
        by_id = {d.interaction.interaction_id: (d, t) for d, t in tasks}
        receipts = [by_id[r[field]][0].receipt(r["sf__Id"]) for r in ok if r.get(field) in by_id]
        for r in ok:
            self._outcomes["created" if r.get("sf__Created") == "true" else "updated"] += 1
        for r in failed:
            if r.get(field) in by_id:
                d, t = by_id[r[field]]
                self.reject(d, r.get("sf__Error") or "refused", request={"endpoint": "Bulk API 2.0 upsert Task", "record": t}, response={"sf__Error": r.get("sf__Error")})
        return receipts

    def _task(self, d: crmsync.Delivery, who_id: str | None) -> dict[str, Any]:
        i = d.interaction
        act = crmsync.activity_text(i, d.author_profile, max_subject=SUBJECT_MAX, max_body=DESCRIPTION_MAX)
        self._cut += act.truncated
        task: dict[str, Any] = {
            self.config["task_external_id"]: i.interaction_id,
            "Subject": act.subject,
            "Description": act.body,
            "ActivityDate": (i.published or i.fetched).astimezone(UTC).date().isoformat() if (i.published or i.fetched) else None,
            "Status": self.config["task_status"],
            "Priority": "High" if i.priority in ("high", "urgent") else "Normal",
            "TaskSubtype": "Email" if i.channel == "email" else "Task",
        }
        if who_id:
            task["WhoId"] = who_id
        values = crmsync.activity_values(i, d.author_profile)
        for sf_field, field in self.config["task_fields"].items():
            v = values[field]
            task[sf_field] = crmsync.truncate(v, 255, "…[truncated]")[0] if isinstance(v, str) else v
        return {k: v for k, v in task.items() if v is not None}

    # who ---------------------------------------------------------------------
    def _who(self, deliveries: Sequence[crmsync.Delivery]) -> dict[str, Any]:
        """Per interaction id: the WhoId, or a SinkRejection when the author's record was refused."""
        authors: dict[str, crmsync.Identity] = {}
        for d in deliveries:
            a = d.author_profile or d.interaction.author
            if a is not None and a.identity_id and not d.interaction.extra.get("business_reply"):  # the company itself: no Lead
                authors.setdefault(a.identity_id, a)
        whom: dict[str, Any] = {k: a.crm_ids[self.crm] for k, a in authors.items() if a.crm_ids.get(self.crm)}
        rest = {k: a for k, a in authors.items() if k not in whom}
        if rest and self.config["contact_match"] == "email":
            whom.update(self._by_email(rest))
            rest = {k: a for k, a in rest.items() if k not in whom}
        if rest and self.config["new_authors"] != "skip":
            whom.update(self._new_authors(rest))
        out: dict[str, Any] = {}
        for d in deliveries:
            a = d.author_profile or d.interaction.author
            if a is not None and a.identity_id in whom and not d.interaction.extra.get("business_reply"):
                out[d.interaction.interaction_id] = whom[a.identity_id]
        return out

    def _by_email(self, authors: dict[str, crmsync.Identity]) -> dict[str, str]:
        wanted = {a.emails[0].strip().lower(): k for k, a in authors.items() if a.emails}
        found: dict[str, str] = {}
        for sobject in ("Contact", "Lead"):
            todo = [e for e in wanted if wanted[e] not in found]
            for chunk in _chunks(todo, 100):
                for r in self.api.query_all(f"SELECT Id, Email FROM {sobject} WHERE Email IN ({soql_list(chunk)})"):
                    k = wanted.get((r.get("Email") or "").lower())
                    if k is not None:
                        found.setdefault(k, r["Id"])
        return found

    def _new_authors(self, authors: dict[str, crmsync.Identity]) -> dict[str, Any]:
        sobject, field, mode = self.config["new_authors"], self.config["contact_external_id"], self.config["contacts"]
        found: dict[str, Any] = {}
        todo = dict(authors)
        if mode in ("update-only", "insert"):
            for chunk in _chunks(list(todo), 100):
                for r in self.api.query_all(f"SELECT Id, {field} FROM {sobject} WHERE {field} IN ({soql_list(chunk)})"):
                    found[r[field]] = r["Id"]
            todo = {k: a for k, a in todo.items() if k not in found}
            if mode == "update-only":
                return found
        for chunk in _chunks(list(todo.items()), COLLECTION_LIMIT):
            records = [self._person(sobject, field, k, a) for k, a in chunk]
            try:
                results = self.api.upsert_collection(sobject, field, records)
            except ApiError as exc:
                raise crmsync.FatalError(f"{exc} (check contact_external_id and new_authors)", plugin=self.instance) from None
            for (k, _a), rec, res in zip(chunk, records, results, strict=True):
                if res.get("success"):
                    found[k] = res["id"]
                else:
                    why = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in res.get("errors", []))
                    found[k] = crmsync.SinkRejection("", 0, f"the author's {sobject} was refused: {why}", "rejected", {"request": {"endpoint": f"PATCH composite/sobjects/{sobject}/{field}", "record": rec}, "response": res})
        return found

    @staticmethod
    def _person(sobject: str, field: str, identity_id: str, a: crmsync.Identity) -> dict[str, Any]:
        first, last = _split_name(a)
        rec: dict[str, Any] = {field: identity_id, "LastName": last}
        if first:
            rec["FirstName"] = first
        if a.emails:
            rec["Email"] = a.emails[0][:80]
        if sobject == "Lead":
            rec["Company"] = (a.company or "[not provided]")[:255]
            rec["LeadSource"] = "crmsync"
            if a.profile_urls:
                rec["Website"] = a.profile_urls[0][:255]
        return rec


__all__ = ["SalesforceSink"]
