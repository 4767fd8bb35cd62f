"""The ``crm_csv`` source: the CRM's contacts export, kept for identity matching."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import crmsync

DEFAULT_MAPPING = {
    "id": "contact_id",
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "name": "name",
    "company": "company",
    "twitter": "twitter",
    "url": "url",
}


class ContactsSource(crmsync.Source):
    """Contacts (or leads) from a CRM's CSV export, as identities with CRM ids."""

    name = "crm_csv"
    channel = "crm"
    description = "The CRM's contacts export (CSV), stored as identities for matching."
    config_schema = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "description": "The contacts export (CSV)."},
            "crm": {"type": "string", "default": "generic", "description": "Name of the CRM the ids belong to."},
            "mapping": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in sorted(DEFAULT_MAPPING)},
                "additionalProperties": False,
                "default": {},
                "description": "Column per field; unset fields use the defaults.",
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
        if (state or {}).get("signature") == sig:
            return
        m = {**DEFAULT_MAPPING, **self.config["mapping"]}
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig", errors="replace"), newline=""))
        for row in reader:
            ref = f"{path}:{reader.line_num}"
            cid = (row.get(m["id"]) or "").strip()
            if not cid:
                yield self.reject(ref, f"contact row has no id in column {m['id']!r}", ",".join(v or "" for v in row.values() if isinstance(v, str)))
                continue
            name = (row.get(m["name"]) or "").strip() or " ".join(p for p in ((row.get(m["first_name"]) or "").strip(), (row.get(m["last_name"]) or "").strip()) if p)
            email = (row.get(m["email"]) or "").strip()
            twitter = (row.get(m["twitter"]) or "").strip().lstrip("@")
            url = (row.get(m["url"]) or "").strip()
            yield crmsync.Identity(
                name=name or None,
                emails=[email] if email else [],
                handles=[f"twitter:{twitter}"] if twitter else [],
                profile_urls=[url] if url else [],
                company=(row.get(m["company"]) or "").strip() or None,
                crm_ids={self.config["crm"]: cid},
            )
        yield crmsync.Checkpoint({"signature": sig})
