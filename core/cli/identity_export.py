"""``crmsync identities list|export``: the contacts and authors the store holds.

What identity matching will use is what the CRM sources read: this lists it,
with each identity's source, its state and how many interactions it is the
author of:

* ``crm``: a CRM record (it has CRM ids), split into ``matched`` (some
  interaction is linked to it) and ``unmatched``;
* ``author``: an author seen in conversations, not in the CRM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


STATES = ("crm", "matched", "unmatched", "author")


def identity_rows(store: Any, *, crm: str | None = None, source: str | None = None, state: str | None = None) -> Iterator[dict[str, Any]]:
    """Identities as JSON-able rows: the record's fields plus ``source``, ``state``,
    ``interactions`` and ``updated_at``; filtered by CRM name (a key of ``crm_ids``,
    or its prefix before a dot), source instance and state (:data:`STATES`)."""
    contacts = True if state in ("crm", "matched", "unmatched") else (False if state == "author" else None)
    for person, src, is_contact, updated, n in store.identities.rows(source=source, contacts=contacts):
        if crm and not any(k == crm or k.split(".", 1)[0] == crm for k in person.crm_ids):
            continue
        row_state = ("matched" if n else "unmatched") if is_contact else "author"
        if state in ("matched", "unmatched") and row_state != state:
            continue
        yield {**person.model_dump(mode="json"), "source": src, "state": row_state, "interactions": n, "updated_at": updated.isoformat() if updated else None}


#: the columns of ``identities export --format csv``
CSV_COLUMNS = ("identity_id", "state", "source", "crm_ids", "name", "emails", "handles", "profile_urls", "company", "kind", "removed", "interactions", "influence", "flags", "updated_at")


def csv_values(row: dict[str, Any]) -> list[str]:
    """One CSV row: lists joined with ``;``, CRM ids as ``crm=id``."""
    out = []
    for c in CSV_COLUMNS:
        v = row.get(c)
        if c == "crm_ids":
            v = ";".join(f"{k}={x}" for k, x in sorted((v or {}).items()))
        elif isinstance(v, list):
            v = ";".join(map(str, v))
        out.append("" if v is None else str(v))
    return out


__all__ = ["CSV_COLUMNS", "STATES", "csv_values", "identity_rows"]
