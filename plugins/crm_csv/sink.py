"""The ``crm_csv`` sink: import-ready CSV files, one set per flush.

Each set is written to temporary files, fsynced and renamed into place, then a
manifest (files, row counts, SHA-256) is written the same way; only then are
receipts returned, so the ledger never moves ahead of a complete file. Re-sent
rows carry the same external id (the interaction id), so importing them again
updates instead of duplicating.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import crmsync

INTERACTION_COLUMNS = [
    "external_id", "version", "operation", "source", "channel", "kind", "native_id", "url", "title", "body_text",
    "published", "updated", "language", "author_identity_id", "author_name", "author_email", "author_handles",
    "author_profile_urls", "in_reply_to", "thread_id", "rating_value", "rating_best", "rating_worst",
    "rating_normalized", "item_reviewed", "tags", "mentions", "sentiment_label", "sentiment_score",
    "needs_response", "priority", "content_hash",
]
CONTACT_COLUMNS = ["external_id", "name", "email", "emails", "handles", "profile_urls", "company"]


def _iso(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


def interaction_row(d: crmsync.Delivery) -> dict[str, Any]:
    """The generic profile's row for one delivery."""
    i = d.interaction
    a = i.author
    return {
        "external_id": i.interaction_id,
        "version": d.version,
        "operation": d.operation,
        "source": i.source,
        "channel": i.channel,
        "kind": i.kind,
        "native_id": i.native_id,
        "url": i.url,
        "title": i.title,
        "body_text": i.body_text,
        "published": _iso(i.published),
        "updated": _iso(i.updated),
        "language": i.language,
        "author_identity_id": a.identity_id if a else None,
        "author_name": a.name if a else None,
        "author_email": a.emails[0] if a and a.emails else None,
        "author_handles": ";".join(a.handles) if a else None,
        "author_profile_urls": ";".join(a.profile_urls) if a else None,
        "in_reply_to": i.in_reply_to,
        "thread_id": i.thread_id,
        "rating_value": i.rating.value if i.rating else None,
        "rating_best": i.rating.best if i.rating else None,
        "rating_worst": i.rating.worst if i.rating else None,
        "rating_normalized": i.rating.normalized if i.rating else None,
        "item_reviewed": (i.item_reviewed.name or i.item_reviewed.id) if i.item_reviewed else None,
        "tags": ";".join(i.tags),
        "mentions": ";".join(i.mentions),
        "sentiment_label": i.sentiment.label if i.sentiment else None,
        "sentiment_score": i.sentiment.score if i.sentiment else None,
        "needs_response": i.needs_response,
        "priority": i.priority,
        "content_hash": i.content_hash,
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PartFile:
    """A CSV file written under a temporary name until :meth:`commit`."""

    def __init__(self, final: Path, columns: list[str], mode: str) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp")
        self.columns = columns
        self.mode = mode
        self.rows = 0
        # newline="" lets csv write RFC 4180 CRLF row ends and keep embedded newlines
        self.fh = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.fh, quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        cells = []
        for c in self.columns:
            v = row.get(c)
            s = "" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v))
            cells.append(crmsync.neutralize_formula(s) if self.mode == "spreadsheet" else s)
        self.writer.writerow(cells)
        self.rows += 1

    def commit(self) -> dict[str, Any]:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.final)
        digest = hashlib.sha256(self.final.read_bytes()).hexdigest()
        return {"file": self.final.name, "rows": self.rows, "sha256": digest}

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


class CsvSink(crmsync.Sink):
    """Import-ready CSV files for a CRM (generic profile: every schema field)."""

    name = "crm_csv"
    description = "CSV import files for CRMs, written atomically with a manifest per set."
    batch_size = 1000
    config_schema = {
        "type": "object",
        "properties": {
            "output_dir": {"type": "string", "description": "Directory the import files are written to."},
            "profile": {"type": "string", "enum": ["generic"], "default": "generic", "description": "Column layout of the target CRM."},
            "mode": {
                "type": "string",
                "enum": ["spreadsheet", "raw"],
                "default": "spreadsheet",
                "description": "spreadsheet: neutralize cells starting with = + - @ tab CR (CSV injection); raw: write values untouched, for direct bulk loaders.",
            },
            "max_rows_per_file": {"type": "integer", "minimum": 1, "default": 50000, "description": "Start a new file set after this many rows."},
        },
        "required": ["output_dir"],
    }

    def open(self) -> None:
        self.dir = self.resolve_path(self.config["output_dir"])
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # left by a crash; never counted as delivered
        self.flush_every = self.config["max_rows_per_file"]
        self._seq = 0
        self._files: dict[str, _PartFile] | None = None
        self._receipts: list[crmsync.Receipt] = []
        self._contacts: set[str] = set()

    def _start(self) -> dict[str, _PartFile]:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        base = f"{stamp}-{(self.context.run_id or 'run')[:8]}-{self._seq:03d}"
        self._base = base
        return {
            "interactions": _PartFile(self.dir / f"interactions-{base}.csv", INTERACTION_COLUMNS, self.config["mode"]),
            "contacts": _PartFile(self.dir / f"contacts-{base}.csv", CONTACT_COLUMNS, self.config["mode"]),
        }

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> None:
        if self._files is None:
            self._files = self._start()
            self._contacts = set()
        for d in deliveries:
            self._files["interactions"].write(interaction_row(d))
            a = d.interaction.author
            if a is not None and a.identity_id and a.identity_id not in self._contacts:
                self._contacts.add(a.identity_id)
                self._files["contacts"].write(
                    {
                        "external_id": a.identity_id,
                        "name": a.name,
                        "email": a.emails[0] if a.emails else None,
                        "emails": ";".join(a.emails),
                        "handles": ";".join(a.handles),
                        "profile_urls": ";".join(a.profile_urls),
                        "company": a.company,
                    }
                )
            self._receipts.append(d.receipt(external_id=d.interaction.interaction_id))
        return None

    def flush(self) -> list[crmsync.Receipt]:
        if self._files is None:
            return []
        files, self._files = self._files, None
        entries = [f.commit() for f in files.values()]
        manifest = {
            "format": "crmsync-crm-csv-manifest/1",
            "profile": self.config["profile"],
            "mode": self.config["mode"],
            "run_id": self.context.run_id,
            "sink": self.instance,
            "written_at": datetime.now(UTC).isoformat(),
            "files": entries,
        }
        final = self.dir / f"manifest-{self._base}.json"
        tmp = final.with_name(f".{final.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        receipts, self._receipts = self._receipts, []
        return receipts

    def abort(self) -> None:
        if self._files is not None:
            for f in self._files.values():
                f.discard()
            self._files = None
        self._receipts = []


def read_import_files(output_dir: str | Path, kind: str = "interactions") -> list[dict[str, str]]:
    """What a CRM holds after importing every complete file set in order.

    Reads the manifests (a file without one is incomplete and skipped),
    checks each file's SHA-256, and applies rows as upserts by
    ``external_id``. Each row also gets ``interaction_id`` (= external id).
    """
    directory = Path(output_dir)
    held: dict[str, dict[str, str]] = {}
    manifests = [(json.loads(m.read_text(encoding="utf-8")), m) for m in directory.glob("manifest-*.json")]
    for data, manifest in sorted(manifests, key=lambda dm: (dm[0]["written_at"], dm[1].name)):
        entries = data["files"]
        for entry in entries:
            if not entry["file"].startswith(kind + "-"):
                continue
            path = directory / entry["file"]
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                msg = f"{path}: checksum does not match {manifest.name}"
                raise ValueError(msg)
            with open(path, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    row["interaction_id"] = row["external_id"]
                    held[row["external_id"]] = row
    return list(held.values())
