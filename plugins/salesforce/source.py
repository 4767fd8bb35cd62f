"""The ``salesforce`` source: Contacts and Leads as CRM contacts, for identity matching.

Incremental by ``LastModifiedDate`` (SOQL, oldest first, paged by the
query's ``nextRecordsUrl``); the cursor steps back ``overlap`` seconds so a
record committed late is not missed (the store de-duplicates what is read
twice). A converted Lead is marked ``removed`` (its Contact takes over);
deleted records are not queried and keep their last state in the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import crmsync

from .api import AUTH_SCHEMA, SalesforceApi

FIELDS = {
    "Contact": ["Id", "FirstName", "LastName", "Email", "Account.Name", "LastModifiedDate"],
    "Lead": ["Id", "FirstName", "LastName", "Email", "Company", "Website", "IsConverted", "LastModifiedDate"],
}


def _parse(value: str) -> datetime:
    return datetime.strptime(value.replace("Z", "+0000")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


class SalesforceContactsSource(crmsync.Source):
    """Salesforce Contacts and Leads as identities with their record ids."""

    name = "salesforce"
    channel = "crm"
    description = "Salesforce Contacts and Leads as CRM contacts for identity matching, read incrementally by LastModifiedDate."
    config_schema = {
        "type": "object",
        "properties": {
            **AUTH_SCHEMA,
            "objects": {"type": "array", "items": {"type": "string", "enum": sorted(FIELDS)}, "default": ["Contact", "Lead"], "description": "Which objects to read."},
            "overlap": {"type": "number", "minimum": 0, "default": 300, "description": "Seconds the modified-since cursor steps back."},
        },
    }

    def check(self) -> list[str]:
        api = SalesforceApi(self)
        for sobject in self.config["objects"]:
            api.describe(sobject)
        return [f"logged in to {api.instance_url}; {', '.join(self.config['objects'])} readable"]

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        api = SalesforceApi(self)
        crm = self.config["crm"]
        cursors = dict((state or {}).get("cursors", {}))
        for sobject in self.config["objects"]:
            soql = f"SELECT {', '.join(FIELDS[sobject])} FROM {sobject}"
            if cursors.get(sobject):
                since = _parse(cursors[sobject]) - timedelta(seconds=self.config["overlap"])
                soql += f" WHERE LastModifiedDate >= {since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            soql += " ORDER BY LastModifiedDate, Id"
            newest = cursors.get(sobject)
            for r in api.query_all(soql):
                if r.get("LastModifiedDate") and (newest is None or _parse(r["LastModifiedDate"]) > _parse(newest)):
                    newest = r["LastModifiedDate"]
                yield self._identity(sobject, r, crm)
            cursors[sobject] = newest
        yield crmsync.Checkpoint({"cursors": cursors})

    @staticmethod
    def _identity(sobject: str, r: dict[str, Any], crm: str) -> crmsync.Identity:
        name = " ".join(x for x in ((r.get("FirstName") or "").strip(), (r.get("LastName") or "").strip()) if x)
        account = r.get("Account") if sobject == "Contact" else None
        company = (account or {}).get("Name") if isinstance(account, dict) else r.get("Company")
        return crmsync.Identity(
            name=name or None,
            emails=[r["Email"].strip()] if (r.get("Email") or "").strip() else [],
            company=(company or "").strip() or None if company != "[not provided]" else None,
            profile_urls=[r["Website"].strip()] if (r.get("Website") or "").strip() else [],
            crm_ids={crm: r["Id"]},
            removed=bool(r.get("IsConverted")),
        )


__all__ = ["SalesforceContactsSource"]
