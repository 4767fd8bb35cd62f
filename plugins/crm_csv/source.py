"""The ``crm_csv`` source: the CRM's contacts (leads, accounts) export, for identity matching.

Reads Salesforce (Data Loader, report exports, insert/upsert templates, the
Salesforce CLI's sObject-tree JSON), HubSpot and generic exports as people
have them: CSV in UTF-8, UTF-16 or UTF-32 (with or without BOM where the
form allows), Windows-1252 (reported as a guess), Excel's ``sep=`` first
line, quoted newlines, duplicate headers, and JSON Lines. Every decision is
reported per file in the run report: the format and why, the key column, the
encoding, the schema fields that stayed empty and the columns left unused.

**The key.** A contact's CRM record id (``Id``, ``Record ID``, ...) when the
export has one; else an external-id column (``mapping.external_id``, or a
Salesforce custom field such as ``ORACLE_ID__C`` that names an id); else the
email address. Record ids are kept as ``crm_ids[crm]``; the others as
``crm_ids["crm.COLUMN"]`` (``salesforce.Email``), so matching uses the contact
while no sink takes the value for a record id. Contacts missing from a newer
export are marked ``removed``, never deleted.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import crmsync

#: Preset header names per field (matched case-insensitively, spaces and
#: underscores ignored); the first header present wins.
PRESETS: dict[str, dict[str, list[str]]] = {
    "salesforce": {
        "id": ["Id", "Contact ID", "Lead ID", "Account ID", "Contact Id", "Lead Id"],
        "email": ["Email", "Email Address"],
        "first_name": ["FirstName", "First Name"],
        "last_name": ["LastName", "Last Name"],
        "name": ["Name", "Full Name", "Account Name"],
        "company": ["Account.Name", "Company", "Account Name", "Company / Account", "CompanyName"],
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
        "email": ["email", "email_address", "emailaddress1"],
        "first_name": ["first_name", "firstname"],
        "last_name": ["last_name", "lastname"],
        "name": ["name", "full_name", "fullname"],
        "company": ["company", "companyname", "company_name", "organization", "organisation", "account"],
        "twitter": ["twitter"],
        "url": ["url", "website"],
    },
}
FIELDS = sorted(PRESETS["generic"])
#: id columns that name another object than the export's (not its record id)
_OTHER_IDS = {"contact": {"accountid", "leadid", "companyid"}, "lead": {"accountid", "contactid", "companyid"}, "account": {"contactid", "leadid"}}
#: fields a mapping may name besides the schema fields
MAPPING_FIELDS = [*FIELDS, "external_id"]


def _norm(header: str) -> str:
    return header.strip().lower().replace(" ", "").replace("_", "")


def detect_format(header: list[str]) -> tuple[str, str] | None:
    """The export's format from its header, with the reason: HubSpot's "Record ID",
    Salesforce's "Id"/"ID" (Data Loader) or a ``__c`` custom field (any case), the
    generic "contact_id"/"id"."""
    exact = {h.strip() for h in header}
    normalized = {_norm(h): h for h in header}
    if "recordid" in normalized:
        return "hubspot", f"column {normalized['recordid']!r}"
    ids = sorted(exact & {"Id", "ID", "Contact ID", "Lead ID", "Account ID"})
    if ids:
        return "salesforce", f"column {ids[0]!r}"
    custom = [h for h in header if h.strip().lower().endswith("__c")]
    if custom:
        return "salesforce", f"custom field column {custom[0].strip()!r} (…__c)"
    for key in ("contactid", "id"):
        if key in normalized:
            return "generic", f"column {normalized[key]!r}"
    return None


def _external_id_column(header: list[str]) -> str | None:
    """A Salesforce custom field that holds an id (``ORACLE_ID__C``, ``Legacy_Id__c``, ``ExternalId__c``)."""
    for h in header:
        n = h.strip().lower()
        if n.endswith("__c"):
            stem = n[:-3]
            if "id" in stem.split("_") or stem.endswith("id"):
                return h.strip()
    return None


class ContactsSource(crmsync.Source):
    """Contacts, leads or accounts from a CRM's export, as identities with CRM ids."""

    name = "crm_csv"
    channel = "crm"
    description = "The CRM's contacts/leads/accounts export (Salesforce, HubSpot or generic; CSV, JSON Lines or Salesforce sObject-tree JSON), kept for identity matching."
    config_schema = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "description": "The export (CSV, JSON Lines, or a Salesforce CLI sObject-tree JSON)."},
            "format": {"type": "string", "enum": ["auto", *sorted(PRESETS)], "default": "auto", "description": "Column layout; auto detects it from the header (and says why in the run report)."},
            "crm": {"type": "string", "description": "Name the record ids are kept under (Identity.crm_ids); default: the format (salesforce, hubspot, generic)."},
            "object": {"type": "string", "enum": ["contact", "lead", "account"], "default": "contact", "description": "What the export holds; accounts become organizations."},
            "encoding": {"type": "string", "description": "The file's encoding (utf-8, cp1252, latin-1, utf-16, ...); default: by BOM, else UTF-8, else Windows-1252 as a guess the run report names."},
            "mapping": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in MAPPING_FIELDS},
                "additionalProperties": False,
                "default": {},
                "description": "Header per field, overriding the format's preset; external_id names a column to key contacts by when the export has no record id.",
            },
            "skip_anonymous": {"type": "boolean", "default": False, "description": "Skip rows with no id, email, name or company (counted in the run report) instead of quarantining them."},
        },
        "required": ["file"],
    }

    def preflight(self) -> list[str]:
        path = self.resolve_path(self.config["file"])
        if not path.is_file():
            msg = f"key 'file': contacts export {path} does not exist"
            raise crmsync.ConfigError(msg, plugin=self.instance)
        return []

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
        with open(path, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":
                msg = f"{path}: not a CSV file: it is a zip archive (an Excel workbook?); save it as CSV (UTF-8)"
                raise crmsync.FatalError(msg, plugin=self.instance)
        # read from the file a line at a time: a 200,000-contact export is not held whole
        lines, decoded = crmsync.export_lines(path, self.config.get("encoding"))
        header, rows, kind, obj_type = self._table(lines, path)
        newlines = crmsync.count_lines(path)[0]
        self.expect(max(0, newlines - 1) if kind == "CSV" else newlines + 1)
        fmt = self.config["format"]
        why = "set in config"
        if fmt == "auto":
            if kind == "sObject-tree JSON":
                fmt, why = "salesforce", "Salesforce sObject-tree JSON"
            else:
                fmt, why = detect_format(header) or ("generic", "no CRM-specific column")
        crm = self.config.get("crm") or fmt
        index, key_field, key_column = self._columns(header, fmt, path, decoded)
        crm_key = crm if key_field == "id" else f"{crm}.{key_column}"
        key_note = f"key: record id column {key_column!r}" if key_field == "id" else (
            f"key: {'external id' if key_field == 'external_id' else 'email'} column {key_column!r} (no record id column; kept as crm_ids[{crm_key!r}], not a record id)"
        )
        self.note(f"{path.name}: {kind}, {decoded.describe()}; format {fmt} ({'detected: ' + why if self.config['format'] == 'auto' else why}); {key_note}" + (f"; objects of type {obj_type}" if obj_type else ""))
        if decoded.guessed:
            self.log.warning("%s: %s", path, decoded.describe())
        seen: list[str] = []
        filled: dict[str, int] = dict.fromkeys(FIELDS, 0)
        anonymous = 0
        rejected = 0
        for line, row in rows:
            ref = f"{path}:{line}"
            problem = getattr(row, "problem", None)
            if problem or len(row) > len(header):
                rejected += 1
                yield self.reject(ref, problem or f"row has {len(row)} fields, the header {len(header)}", crmsync.csv_line(row))
                continue
            rec = {field: (row[i].strip() if i is not None and i < len(row) else "") for field, i in index.items()}
            if not any(rec[f] for f in ("id", "external_id", "email", "name", "first_name", "last_name", "company")):
                if self.config["skip_anonymous"]:
                    anonymous += 1
                    continue
                rejected += 1
                yield self.reject(ref, "anonymous row: no id, email, name or company (skip_anonymous = true skips such rows)", crmsync.csv_line(row))
                continue
            if not rec[key_field]:
                what = "record id" if key_field == "id" else ("external id" if key_field == "external_id" else "email")
                rejected += 1
                yield self.reject(ref, f"row has no {what} (column {key_column!r}, the key of this export)", crmsync.csv_line(row))
                continue
            for f in FIELDS:
                filled[f] += bool(rec[f])
            seen.append(rec[key_field])
            built = (self._identity(rec, crm_key, rec[key_field]) for _ in (1,))  # lazy: built inside the guard
            for out in self.guard(ref, crmsync.csv_line(row), built):
                rejected += isinstance(out, crmsync.Rejected)
                yield out
        self._report_columns(path, header, index, filled, len(seen), anonymous)
        previous_key = state.get("key", crm)
        gone = sorted(set(state.get("ids", [])) - set(seen)) if previous_key == crm_key else []
        if rejected and gone:
            # a contact missing from this export may sit in a quarantined row: none is marked removed
            self.note(f"{path.name}: {rejected} row(s) quarantined, so {len(gone)} contact(s) missing from this export are not marked removed")
            seen += gone
            gone = []
        for crm_id in gone:
            yield crmsync.Identity(crm_ids={crm_key: crm_id}, removed=True, kind="organization" if self.config["object"] == "account" else "person")
        yield crmsync.Checkpoint({"signature": sig, "ids": sorted(set(seen)), "key": crm_key})

    # reading -----------------------------------------------------------------
    def _table(self, lines: Iterator[str], path: Any) -> tuple[list[str], Iterator[tuple[int, list[str]]], str, str | None]:
        """(header, rows, what the file is, sObject type): CSV (read a line at a time),
        JSON Lines or sObject-tree JSON (read whole)."""
        first: list[str] = []
        for line in lines:
            first.append(line)
            if line.strip():
                break
        start = "".join(first).lstrip()[:1]
        if start not in ("{", "["):
            header, rows = crmsync.read_csv(itertools.chain(first, lines))
            return header, rows, "CSV", None
        text = "".join(itertools.chain(first, lines))
        try:
            doc = json.loads(text)
            records = doc.get("records") if isinstance(doc, dict) else doc
            kind = "sObject-tree JSON" if isinstance(doc, dict) and "records" in doc else "JSON array"
        except ValueError:
            try:
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
                kind = "JSON Lines"
            except ValueError as exc:
                msg = f"{path}: not a CSV file and not valid JSON or JSON Lines ({exc}); export the contacts as CSV"
                raise crmsync.FatalError(msg, plugin=self.instance) from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            msg = f"{path}: not a CSV file, and its JSON holds no list of contact objects (expected an sObject tree {{\"records\": [...]}} or one object a line)"
            raise crmsync.FatalError(msg, plugin=self.instance)
        types = {str((r.get("attributes") or {}).get("type")) for r in records if isinstance(r.get("attributes"), dict)}
        header: list[str] = []
        flat = [self._flatten(r) for r in records]
        for r in flat:
            header += [k for k in r if k not in header]

        def rows() -> Iterator[tuple[int, list[str]]]:
            for n, r in enumerate(flat, 1):
                yield n, ["" if r.get(h) is None else str(r.get(h)) for h in header]

        return header, rows(), "sObject-tree JSON" if kind == "sObject-tree JSON" else kind, ", ".join(sorted(types)) or None

    @staticmethod
    def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """Nested objects as dotted keys (``Account.Name``); ``attributes`` left out."""
        out: dict[str, Any] = {}
        for k, v in record.items():
            if k == "attributes":
                continue
            if isinstance(v, dict):
                out.update(ContactsSource._flatten(v, f"{prefix}{k}."))
            elif not isinstance(v, list):
                out[f"{prefix}{k}"] = v
        return out

    def _columns(self, header: list[str], fmt: str, path: Any, decoded: crmsync.Decoded) -> tuple[dict[str, int | None], str, str]:
        """Column per field, the key field (id, external_id or email) and its column."""
        normalized = [_norm(h) for h in header]
        mapping = self.config["mapping"]
        index: dict[str, int | None] = {}
        for field in MAPPING_FIELDS:
            if field in mapping:
                wanted = [mapping[field]]
            elif field == "external_id":
                auto = _external_id_column(header) if fmt == "salesforce" else None
                wanted = [auto] if auto else []
            else:
                # another object's id is a reference here (a contact export's AccountId)
                wanted = [w for w in PRESETS[fmt][field] if field != "id" or _norm(w) not in _OTHER_IDS[self.config["object"]]]
            index[field] = next((normalized.index(_norm(w)) for w in wanted if _norm(w) in normalized), None)
            if field in mapping and index[field] is None:
                msg = f"{path}: mapping.{field} = {mapping[field]!r} names no column of the file; its columns: {', '.join(header[:30]) or '(none)'}" + self._decoding_hint(header, decoded)
                raise crmsync.FatalError(msg, plugin=self.instance)
        for field in ("id", "external_id", "email"):
            if index[field] is not None:
                return index, field, header[index[field]]
        looked = f"mapping.id = {mapping['id']!r}" if "id" in mapping else f"the {fmt} preset's {', '.join(PRESETS[fmt]['id'])}"
        msg = (f"{path}: no column to key contacts by: no record id column (looked for {looked}), no external id column (mapping.external_id) "
               f"and no email column (looked for {', '.join(PRESETS[fmt]['email'])}); set mapping.id, mapping.external_id or mapping.email") + self._decoding_hint(header, decoded)
        raise crmsync.FatalError(msg, plugin=self.instance)

    @staticmethod
    def _decoding_hint(header: list[str], decoded: crmsync.Decoded) -> str:
        joined = "".join(header)
        if decoded.replaced or "\x00" in joined or "\ufffd" in joined:
            return f"; the file does not look decoded right ({decoded.describe()}): set encoding"
        if decoded.guessed:
            return f" ({decoded.describe()})"
        return ""

    def _report_columns(self, path: Any, header: list[str], index: dict[str, int | None], filled: dict[str, int], rows: int, anonymous: int) -> None:
        if not rows:
            return
        empty = [f for f in FIELDS if f != "id" and not filled[f] and not (f == "name" and (filled["first_name"] or filled["last_name"])) and not (f in ("first_name", "last_name") and filled["name"])]
        used = {i for i in index.values() if i is not None}
        unused = [h for n, h in enumerate(header) if n not in used]
        if empty:
            self.note(f"{path.name}: fields empty in every row: {', '.join(empty)}")
        if unused:
            more = f" and {len(unused) - 12} more" if len(unused) > 12 else ""
            self.note(f"{path.name}: columns not used: {', '.join(unused[:12])}{more} (map one with mapping.FIELD)")
        if anonymous:
            self.note(f"{path.name}: skipped {anonymous} anonymous row(s) (no id, email, name or company)")

    def _identity(self, rec: dict[str, str], crm_key: str, key: str) -> crmsync.Identity:
        account = self.config["object"] == "account"
        name = rec["name"] or " ".join(p for p in (rec["first_name"], rec["last_name"]) if p) or (rec["company"] if account else "")
        twitter = rec["twitter"].lstrip("@")
        return crmsync.Identity(
            name=name or None,
            emails=[rec["email"]] if rec["email"] else [],
            handles=[f"twitter:{twitter}"] if twitter else [],
            profile_urls=[rec["url"]] if rec["url"] else [],
            company=(name if account else rec["company"]) or None,
            crm_ids={crm_key: key},
            kind="organization" if account else "person",
        )
