"""The ``crm_csv`` source: the CRM's contacts (leads, accounts) export, for identity matching.

Reads Salesforce (Data Loader, report exports), HubSpot and generic CSV
exports with the quirks real exports have: UTF-8 and UTF-16 with or without
BOM, Windows-1252, Excel's ``sep=`` first line, quoted newlines and
duplicate headers. Contacts missing from a newer export are marked
``removed``, never deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import crmsync

#: Preset header names per field (matched case-insensitively, spaces and
#: underscores ignored); the first header present wins.
PRESETS: dict[str, dict[str, list[str]]] = {
    "salesforce": {
        "id": ["Id", "Contact ID", "Lead ID", "Account ID", "Contact Id", "Lead Id"],
        "email": ["Email"],
        "first_name": ["FirstName", "First Name"],
        "last_name": ["LastName", "Last Name"],
        "name": ["Name", "Full Name", "Account Name"],
        "company": ["Account.Name", "Company", "Account Name", "Company / Account"],
        "twitter": ["Twitter__c", "Twitter"],
        "url": ["Website", "LinkedIn__c"],
    },
    "hubspot": {
        "id": ["Record ID", "Contact ID", "Company ID"],
        "email": ["Email"],
        "first_name": ["First Name"],
        "last_name": ["Last Name"],
        "name": ["Name"],
        "company": ["Company Name", "Company name", "Associated Company"],
        "twitter": ["Twitter Username"],
        "url": ["Website URL", "LinkedIn URL", "LinkedIn Bio"],
    },
    "generic": {
        "id": ["contact_id", "id"],
        "email": ["email"],
        "first_name": ["first_name"],
        "last_name": ["last_name"],
        "name": ["name"],
        "company": ["company"],
        "twitter": ["twitter"],
        "url": ["url", "website"],
    },
}
FIELDS = sorted(PRESETS["generic"])


def _norm(header: str) -> str:
    return header.strip().lower().replace(" ", "").replace("_", "")


def detect_format(header: list[str]) -> str | None:
    """The export's format from its header: HubSpot's "Record ID", Salesforce's
    "Id"/"ID" (Data Loader) or ``__c`` custom fields, the generic "contact_id"."""
    exact = {h.strip() for h in header}
    normalized = {_norm(h) for h in header}
    if "recordid" in normalized:
        return "hubspot"
    if exact & {"Id", "ID", "Contact ID", "Lead ID", "Account ID"} or any(h.endswith("__c") for h in exact):
        return "salesforce"
    if "contactid" in normalized or "id" in normalized:
        return "generic"
    return None


class ContactsSource(crmsync.Source):
    """Contacts, leads or accounts from a CRM's CSV export, as identities with CRM ids."""

    name = "crm_csv"
    channel = "crm"
    description = "The CRM's contacts/leads/accounts export (Salesforce, HubSpot or generic CSV), kept for identity matching."
    config_schema = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "description": "The export (CSV)."},
            "format": {"type": "string", "enum": ["auto", *sorted(PRESETS)], "default": "auto", "description": "Column layout; auto detects it from the header."},
            "crm": {"type": "string", "description": "Name the record ids are kept under (Identity.crm_ids); default: the format (salesforce, hubspot, generic)."},
            "object": {"type": "string", "enum": ["contact", "lead", "account"], "default": "contact", "description": "What the export holds; accounts become organizations."},
            "mapping": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in FIELDS},
                "additionalProperties": False,
                "default": {},
                "description": "Header per field, overriding the format's preset.",
            },
        },
        "required": ["file"],
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        path = self.resolve_path(self.config["file"])
        if not path.is_file():
            msg = f"contacts export {path} does not exist"
            raise crmsync.FatalError(msg, plugin=self.instance)
        st = path.stat()
        sig = f"{st.st_size}:{st.st_mtime_ns}"
        state = state or {}
        if state.get("signature") == sig:
            return
        header, rows = crmsync.read_csv(crmsync.decode_text(path.read_bytes()))
        fmt = self.config["format"]
        if fmt == "auto":
            fmt = detect_format(header) or "generic"
        crm = self.config.get("crm") or fmt
        index = self._columns(header, fmt, path)
        seen: list[str] = []
        for line, row in rows:
            ref = f"{path}:{line}"
            rec = {field: (row[i].strip() if i is not None and i < len(row) else "") for field, i in index.items()}
            if len(row) > len(header):
                yield self.reject(ref, f"row has {len(row)} fields, the header {len(header)}", crmsync.csv_line(row))
                continue
            if not rec["id"]:
                yield self.reject(ref, f"row has no record id (column {header[index['id']]!r})", crmsync.csv_line(row))
                continue
            seen.append(rec["id"])
            yield self._identity(rec, crm)
        for gone in sorted(set(state.get("ids", [])) - set(seen)):
            yield crmsync.Identity(crm_ids={crm: gone}, removed=True, kind="organization" if self.config["object"] == "account" else "person")
        yield crmsync.Checkpoint({"signature": sig, "ids": sorted(set(seen))})

    def _columns(self, header: list[str], fmt: str, path: Any) -> dict[str, int | None]:
        normalized = [_norm(h) for h in header]
        index: dict[str, int | None] = {}
        for field in FIELDS:
            wanted = [self.config["mapping"][field]] if field in self.config["mapping"] else PRESETS[fmt][field]
            index[field] = next((normalized.index(_norm(w)) for w in wanted if _norm(w) in normalized), None)
        if index["id"] is None:
            msg = f"{path}: no record id column found for format {fmt!r} (looked for {', '.join(PRESETS[fmt]['id'])}); set mapping.id"
            raise crmsync.FatalError(msg, plugin=self.instance)
        return index

    def _identity(self, rec: dict[str, str], crm: str) -> crmsync.Identity:
        account = self.config["object"] == "account"
        name = rec["name"] or " ".join(p for p in (rec["first_name"], rec["last_name"]) if p) or (rec["company"] if account else "")
        twitter = rec["twitter"].lstrip("@")
        return crmsync.Identity(
            name=name or None,
            emails=[rec["email"]] if rec["email"] else [],
            handles=[f"twitter:{twitter}"] if twitter else [],
            profile_urls=[rec["url"]] if rec["url"] else [],
            company=(name if account else rec["company"]) or None,
            crm_ids={crm: rec["id"]},
            kind="organization" if account else "person",
        )
