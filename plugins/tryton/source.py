"""The ``tryton`` source: Tryton's parties as CRM contacts, for identity matching.

Incremental by ``last_modified_at`` (Tryton's write date, else create date,
searchable on every model): a run reads the parties changed since the last
one, or whose contact mechanisms changed (an edited email changes the
mechanism, not the party). Tryton's timestamps are naive UTC and, on
PostgreSQL, the *transaction's* start, so a change committed late can carry
an earlier time than one already read: the cursor steps back ``overlap``
seconds and the store de-duplicates what is read twice. Parties deleted or
deactivated since the last run show only by comparing id sets; they are
marked ``removed``, never deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import crmsync

from .sink import CONNECTION_SCHEMA, make_client

_PAGE = 500


class TrytonContactsSource(crmsync.Source):
    """Tryton parties (with their email, website and social contact mechanisms) as identities."""

    name = "tryton"
    channel = "crm"
    description = "Tryton's parties as CRM contacts for identity matching, read incrementally over JSON-RPC."
    config_schema = {
        "type": "object",
        "properties": {
            **CONNECTION_SCHEMA,
            "overlap": {"type": "number", "minimum": 0, "default": 300, "description": "Seconds the changed-since cursor steps back (late commits on PostgreSQL)."},
        },
        "required": ["url", "database", "password"],
    }

    def check(self) -> list[str]:
        client = make_client(self)
        try:
            client.login()
            n = len(client.model("party.party", "search", [], 0, None, None))
            return [f"logged in to {client.endpoint} as {self.config['username']!r}; {n} active parties"]
        finally:
            client.close()

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        client = make_client(self)
        try:
            yield from self._read(client, state or {})
        finally:
            client.close()

    def _read(self, client: Any, state: dict[str, Any]) -> Iterator[crmsync.Record]:
        crm = self.config["crm"]
        cursor = datetime.fromisoformat(state["cursor"]) if state.get("cursor") else None
        alive = set(client.model("party.party", "search", [], 0, None, [["id", "ASC"]]))
        if cursor is None:
            changed = sorted(alive)
        else:
            since = cursor - timedelta(seconds=self.config["overlap"])
            domain = ["OR", ["last_modified_at", ">=", since], ["contact_mechanisms.last_modified_at", ">=", since]]
            changed = client.model("party.party", "search", domain, 0, None, [["id", "ASC"]])
        newest = cursor
        for start in range(0, len(changed), _PAGE):
            ids = changed[start:start + _PAGE]
            parties = client.model("party.party", "read", ids, ["name", "active", "last_modified_at"])
            mechanisms: dict[int, list[dict[str, Any]]] = {}
            for m in client.model("party.contact_mechanism", "search_read", [["party", "in", ids]], 0, None, [["sequence", "ASC"], ["id", "ASC"]], ["party", "type", "value", "last_modified_at"]):
                mechanisms.setdefault(m["party"], []).append(m)
            for p in parties:
                stamps = [p.get("last_modified_at"), *(m.get("last_modified_at") for m in mechanisms.get(p["id"], []))]
                for t in stamps:
                    if t is not None and (newest is None or t > newest):
                        newest = t
                yield self._identity(p, mechanisms.get(p["id"], []), crm)
        for gone in sorted(set(state.get("ids", [])) - alive):
            yield crmsync.Identity(crm_ids={crm: str(gone)}, removed=True)
        yield crmsync.Checkpoint({"cursor": newest.isoformat() if newest else None, "ids": sorted(alive)})

    @staticmethod
    def _identity(party: dict[str, Any], mechanisms: list[dict[str, Any]], crm: str) -> crmsync.Identity:
        emails = [m["value"].strip() for m in mechanisms if m["type"] == "email" and m.get("value")]
        urls = [m["value"].strip() for m in mechanisms if m["type"] == "website" and m.get("value")]
        handles = [f"{m['type']}:{m['value'].strip()}" for m in mechanisms if m["type"] in ("skype", "irc", "jabber") and m.get("value")]
        return crmsync.Identity(
            name=(party.get("name") or "").strip() or None,
            emails=emails,
            profile_urls=urls,
            handles=handles,
            crm_ids={crm: str(party["id"])},
            removed=not party.get("active", True),
        )


__all__ = ["TrytonContactsSource"]
