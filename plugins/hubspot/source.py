"""The ``hubspot`` source: HubSpot's contacts as CRM contacts, for identity matching.

Incremental by ``lastmodifieddate`` through the CRM search API: contacts
modified since the cursor, oldest first, 200 a page. A search reaches at most
10,000 results, so a longer backlog is read in slices: the next slice starts
at the last modification time read (records read twice are de-duplicated by
the store). HubSpot's search index trails writes by a few seconds, so the
cursor steps back ``overlap`` seconds. Archived (deleted) contacts are not
searched; they keep their last state in the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import crmsync

from .api import SEARCH_LIMIT
from .sink import CONNECTION_SCHEMA, make_api

PROPERTIES = ["email", "hs_additional_emails", "firstname", "lastname", "company", "website", "twitterhandle", "lastmodifieddate"]
_MAX_RESULTS = 10_000


class HubSpotContactsSource(crmsync.Source):
    """HubSpot contacts (emails, name, company, website, Twitter handle) as identities."""

    name = "hubspot"
    channel = "crm"
    description = "HubSpot's contacts as CRM contacts for identity matching, read incrementally through the search API."
    config_schema = {
        "type": "object",
        "properties": {
            **CONNECTION_SCHEMA,
            "overlap": {"type": "number", "minimum": 0, "default": 300, "description": "Seconds the modified-since cursor steps back (the search index trails writes)."},
        },
        "required": ["access_token"],
    }

    def check(self) -> list[str]:
        api = make_api(self)
        page = api.search("contacts", {"filterGroups": [], "properties": ["email"], "limit": 1})
        return [f"token accepted by {api.base_url}; {page.get('total', 0)} contacts"]

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        api = make_api(self)
        crm = self.config["crm"]
        cursor = (state or {}).get("cursor")
        since = None
        if cursor:
            since = (datetime.fromisoformat(cursor.replace("Z", "+00:00")) - timedelta(seconds=self.config["overlap"])).isoformat().replace("+00:00", "Z")
        newest = cursor
        while True:
            after, last, count = 0, None, 0
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}]}] if since else [],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": PROPERTIES,
                    "limit": SEARCH_LIMIT,
                }
                if after:
                    body["after"] = str(after)
                page = api.search("contacts", body)
                for r in page.get("results", []):
                    count += 1
                    last = r["properties"].get("lastmodifieddate") or last
                    yield self._identity(r, crm)
                nxt = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not nxt:
                    break
                after = int(nxt)
                if after + SEARCH_LIMIT > _MAX_RESULTS:
                    break  # the search's reach: the next slice starts where this one ended
            if last and (newest is None or last > newest):
                newest = last
            if count < _MAX_RESULTS - SEARCH_LIMIT or last is None or last == since:
                break
            since = last
        yield crmsync.Checkpoint({"cursor": newest})

    @staticmethod
    def _identity(r: dict[str, Any], crm: str) -> crmsync.Identity:
        p = r.get("properties") or {}
        emails = [e.strip() for e in [p.get("email") or "", *(p.get("hs_additional_emails") or "").split(";")] if e.strip()]
        name = " ".join(x for x in ((p.get("firstname") or "").strip(), (p.get("lastname") or "").strip()) if x)
        twitter = (p.get("twitterhandle") or "").strip().lstrip("@")
        return crmsync.Identity(
            name=name or None,
            emails=emails,
            company=(p.get("company") or "").strip() or None,
            profile_urls=[p["website"].strip()] if (p.get("website") or "").strip() else [],
            handles=[f"twitter:{twitter}"] if twitter else [],
            crm_ids={crm: str(r["id"])},
        )


__all__ = ["HubSpotContactsSource"]
