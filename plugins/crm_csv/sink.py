"""The ``crm_csv`` sink: import-ready CSV files for a CRM, one file set per flush.

Each file set is written under temporary names, fsynced and renamed into
place, then a manifest (files, objects, upsert keys, row counts, SHA-256) is
written the same way; only then does the sink hand back receipts, so the
ledger never moves ahead of a complete file set. A re-sent row carries the
same external id, so importing it again updates instead of duplicating.
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

from .filesets import settle, write_marker
from .profiles import PROFILES, FileKind, field_names, identity_fields, interaction_fields

TRUNCATION_MARKER = "…[truncated]"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: first characters of a cell crmsync.neutralize_formula may change (a formula sign,
#: a control character, the spaces and quotes it looks behind, or a NUL it removes)
_RISKY_FIRST = frozenset("=+-@\t\r\n \"\x00")


class _PartFile:
    """One CSV file written under a temporary name until :meth:`commit`."""

    def __init__(self, final: Path, spec: FileKind, columns: list[tuple[str, str]], mode: str, bom: bool = False) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp")
        self.spec = spec
        self.mode = mode
        self.rows = 0
        self.truncated: dict[str, int] = {}
        # UTF-8 without BOM by default (a BOM breaks Salesforce's first header; Excel
        # needs one to read UTF-8: bom = true); newline="" lets csv write RFC 4180
        # CRLF row ends and keep embedded newlines as they are
        self.fh = open(self.tmp, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self.writer.writerow([c for c, _ in columns])
        # per column, worked out once: (column, field or None, literal, length limit)
        self.plan = [
            (c, None, src[len("literal:"):], spec.limits.get(c)) if src.startswith("literal:") else (c, src, None, spec.limits.get(c))
            for c, src in columns
        ]

    def write(self, values: dict[str, Any]) -> None:
        cells = []
        spreadsheet = self.mode == "spreadsheet"
        for column, field, literal, limit in self.plan:
            v = literal if field is None else values.get(field)
            if v is None:
                s = ""
            elif v is True or v is False:
                s = "true" if v else "false"
            else:
                s = v if type(v) is str else str(v)
                if "\x00" in s:  # no importer takes a NUL, in either mode
                    s = s.replace("\x00", "")
            if limit is not None and len(s) > limit:
                s = crmsync.truncate(s, limit, TRUNCATION_MARKER)[0]
                self.truncated[column] = self.truncated.get(column, 0) + 1
            # only a cell starting with one of these can need neutralizing (most cells: none)
            cells.append(crmsync.neutralize_formula(s) if spreadsheet and s and s[0] in _RISKY_FIRST else s)
        self.writer.writerow(cells)
        self.rows += 1

    def commit(self) -> dict[str, Any]:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.final)
        with open(self.final, "rb") as fh:  # in chunks: a file set's CSV runs to tens of MB
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        return {"file": self.final.name, "object": self.spec.object, "kind": self.spec.kind, "source": self.spec.source, "key": self.spec.key, "rows": self.rows, "sha256": digest}

    def discard(self) -> None:
        if not self.fh.closed:
            try:
                self.fh.close()
            except OSError:
                pass  # its buffer cannot be written (a full disk): the file goes anyway
        self.tmp.unlink(missing_ok=True)


class CsvSink(crmsync.Sink):
    """Import-ready CSV files for Salesforce, HubSpot or any CRM (generic)."""

    name = "crm_csv"
    description = "CRM import files (Salesforce, HubSpot, generic), written atomically with a manifest per file set."
    batch_size = 1000
    parallel = True  # file sets are independent; rows are upserts by key
    config_schema = {
        "type": "object",
        "properties": {
            "output_dir": {"type": "string", "description": "Directory the import files are written to."},
            "profile": {
                "type": "string",
                "enum": sorted(PROFILES),
                "default": "generic",
                "description": "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()),
            },
            "bom": {"type": "boolean", "default": False, "description": "Start each file with a UTF-8 byte-order mark: Excel needs it to read UTF-8 (Salesforce's import breaks on it; off by default)."},
            "mode": {
                "type": "string",
                "enum": ["spreadsheet", "raw"],
                "default": "spreadsheet",
                "description": "spreadsheet: cells starting with = + - @ tab or CR get a leading ' (CSV injection); raw: values untouched, for direct bulk loaders (Data Loader, Bulk API) that never evaluate formulas.",
            },
            "columns": {
                "type": "object",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
                "default": {},
                "description": "Per file kind (tasks, leads, notes, interactions, contacts): {Column = 'field' | 'literal:VALUE' | ''}. Adds or overrides columns; '' drops one.",
            },
            "new_authors": {
                "type": "string",
                "enum": ["create", "skip"],
                "default": "create",
                "description": "Authors without a CRM record id: create them (Salesforce Leads, generic contacts) or leave interactions unlinked.",
            },
            "max_rows_per_file": {"type": "integer", "minimum": 1, "default": 50000, "description": "Start a new file set after this many interactions."},
        },
        "required": ["output_dir"],
    }

    def preflight(self) -> list[str]:
        self._columns()
        return []

    def _columns(self) -> list[tuple[FileKind, list[tuple[str, str]]]]:
        """Each file kind of the profile with its columns, the config's overrides
        applied; a ConfigError names a wrong kind, field or dropped key column."""
        profile = PROFILES[self.config["profile"]]
        overrides: dict[str, dict[str, str]] = self.config["columns"]
        known = {k.kind for k in profile.files}
        for kind in overrides:
            if kind not in known:
                msg = f"key 'columns': profile {profile.name!r} has no file kind {kind!r}; valid kinds: {', '.join(sorted(known))}"
                raise crmsync.ConfigError(msg, plugin=self.instance)
        kinds = []
        for spec in profile.files:
            cols = dict(spec.columns)
            for column, source in overrides.get(spec.kind, {}).items():
                if source == "":
                    cols.pop(column, None)
                    continue
                if not source.startswith("literal:") and source not in field_names(spec.source):
                    msg = f"key 'columns.{spec.kind}.{column}': unknown field {source!r}; valid fields: {', '.join(field_names(spec.source))}, or literal:VALUE"
                    raise crmsync.ConfigError(msg, plugin=self.instance)
                cols[column] = source
            if spec.key not in cols:
                msg = f"key 'columns.{spec.kind}': the upsert key column {spec.key!r} cannot be dropped"
                raise crmsync.ConfigError(msg, plugin=self.instance)
            kinds.append((spec, list(cols.items())))
        return kinds

    def open(self) -> None:
        self.profile = PROFILES[self.config["profile"]]
        self.kinds = self._columns()
        # the HTML note body costs an escape per line: made only when a column uses it
        self._html_note = any(src == "note_body_html" for _spec, cols in self.kinds for _c, src in cols)
        self.dir = self.resolve_path(self.config["output_dir"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self._tag = (self.context.run_id or "run")[:8]
        # what interrupted runs left: complete sets the ledger lacks, incomplete ones, temporaries
        self._inherited, notes = settle(self.dir, self._tag)
        self._returned: list[Path] = []  # markers of this run's sets whose flush returned
        for line in notes:
            self.note(line)
        self._aborted = False
        self.flush_every = self.config["max_rows_per_file"]
        self._seq = 0
        self._files: dict[str, _PartFile] | None = None
        # one JSON string per written batch, not a Receipt per row: a file set holds
        # up to max_rows_per_file of them until the flush, and small objects kept that
        # long pin memory the pages in between would have given back
        self._receipt_batches: list[str] = []
        self._authors: set[str] = set()
        self._truncated: dict[str, int] = {}
        self._no_contact = 0

    def _new_base(self) -> None:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        part = "" if self.context.part is None else f"p{self.context.part}-"
        self._base = f"{stamp}-{self._tag}-{part}{self._seq:03d}"

    def _start(self) -> dict[str, _PartFile]:
        self._new_base()
        self._authors = set()
        return {spec.kind: _PartFile(self.dir / f"{spec.kind}-{self._base}.csv", spec, cols, self.config["mode"], self.config["bom"]) for spec, cols in self.kinds}

    def _recorded(self) -> None:
        """The runner calls again only after recording the receipts the last flush
        returned: that flush's marker has done its work."""
        for marker in self._returned:
            marker.unlink(missing_ok=True)
        self._returned = []

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> None:
        self._recorded()
        already = self._inherited.versions
        if already:
            # in a complete set an interrupted run wrote: the receipt, not a second copy
            known = [(d.interaction.interaction_id, d.version) for d in deliveries if already.get(d.interaction.interaction_id) == d.version]
            if known:
                self._receipt_batches.append(json.dumps(known, separators=(",", ":")))
                skip = {iid for iid, _ in known}
                for iid in skip:
                    self._inherited.seen(iid)
                deliveries = [d for d in deliveries if d.interaction.interaction_id not in skip]
                if not deliveries:
                    return None
        if self._files is None:
            self._files = self._start()
        crm = self.profile.crm
        create = self.config["new_authors"] == "create"
        done: list[tuple[str, int]] = []
        for d in deliveries:
            values = interaction_fields(d, crm, html_note=self._html_note)
            if crm == "hubspot" and values["contact_email"] is None and values["contact_record_id"] is None:
                self._no_contact += 1
            if not create:
                values["author_new_lead_id"] = None
            a = d.interaction.author
            for spec, _ in self.kinds:
                f = self._files[spec.kind]
                if spec.source == "interaction":
                    f.write(values)
                elif a is not None and a.identity_id and a.identity_id not in self._authors and create and not a.crm_ids.get(crm):
                    f.write(identity_fields(d.author_profile or a))
            if a is not None and a.identity_id:
                self._authors.add(a.identity_id)
            done.append((d.interaction.interaction_id, d.version))
        self._receipt_batches.append(json.dumps(done, separators=(",", ":")))
        return None

    def flush(self) -> list[crmsync.Receipt]:
        self._recorded()
        if self._files is None:  # nothing written since the last flush; receipts of recognised records only
            batches, self._receipt_batches = self._receipt_batches, []
            return [crmsync.Receipt(iid, version, iid) for batch in batches for iid, version in json.loads(batch)]
        files = self._files
        entries = [f.commit() for f in files.values()]  # if one fails, abort() discards the rest
        self._files = None
        if self._no_contact:
            self.note(f"{self._no_contact} note(s) have no contact to import with (an author without email or CRM record, or a business's reply): they import unassociated, no empty contact is created")
            self._no_contact = 0
        for f in files.values():
            for column, n in f.truncated.items():
                self.note(f"truncated {n} value(s) of {f.spec.kind}.{column} to {f.spec.limits[column]} characters")
        manifest = {
            "format": "crmsync-crm-csv-manifest/1",
            "profile": self.profile.name,
            "mode": self.config["mode"],
            "run_id": self.context.run_id,
            "sink": self.instance,
            "written_at": datetime.now(UTC).isoformat(),
            "files": entries,
        }
        receipts = [(iid, version) for batch in self._receipt_batches for iid, version in json.loads(batch)]
        # before the manifest makes the set visible: what it holds, for a run that must settle it
        marker = write_marker(self.dir, self._base, receipts)
        self._write_manifest(manifest)
        self._receipt_batches = []
        self._returned.append(marker)
        return [crmsync.Receipt(iid, version, iid) for iid, version in receipts]

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """A deletion file set: per interaction object, a CSV of the external ids to
        delete (``deletions-<object>-...csv``, the key column named as in the import
        files) and a manifest that lists it with ``"source": "deletion"``. Salesforce's
        Data Loader deletes from such a file (map the key to Id via an upsert lookup, or
        use the external id with Bulk API hard delete); other importers take the list.
        ``read_import_files`` applies it."""
        ids = [(d.interaction_id, d.external_id or d.interaction_id) for d in deletions]
        self._deletion_set("interaction", [external for _iid, external in ids])
        return [iid for iid, _ in ids]

    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        """The people rows this sink wrote for new authors (Leads, contacts), in a deletion
        file set keyed as their import files are (by identity id)."""
        if any(spec.source == "identity" for spec, _ in self.kinds):
            self._deletion_set("identity", list(identity_ids))
        return list(identity_ids)

    def _deletion_set(self, source: str, keys: list[str]) -> None:
        pending = getattr(self, "_base", None)  # a file set being written keeps its name
        self._new_base()
        entries = []
        for spec, _cols in self.kinds:
            if spec.source != source:
                continue
            final = self.dir / f"deletions-{spec.kind}-{self._base}.csv"
            tmp = final.with_name(f".{final.name}.tmp")
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\r\n")
                writer.writerow([spec.key, "object"])
                writer.writerows([key, spec.object] for key in keys)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            with open(final, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            entries.append({"file": final.name, "object": spec.object, "kind": f"deletions-{spec.kind}", "source": "deletion", "key": spec.key, "rows": len(keys), "sha256": digest})
        self._write_manifest({"format": "crmsync-crm-csv-manifest/1", "profile": self.profile.name, "mode": self.config["mode"], "run_id": self.context.run_id,
                              "sink": self.instance, "written_at": datetime.now(UTC).isoformat(), "files": entries})
        if pending is not None:
            self._base = pending

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        """The set's manifest, fsynced and renamed into place: the set is now visible."""
        final = self.dir / f"manifest-{self._base}.json"
        tmp = final.with_name(f".{final.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)

    def abort(self) -> None:
        self._aborted = True  # the ledger may lack receipts of a set already in place: keep its marker
        if getattr(self, "_files", None) is not None:  # None too when open() failed
            for f in self._files.values():
                f.discard()
            self._files = None
        self._receipt_batches = []

    def close(self) -> None:
        # the runner closes after recording every receipt the flushes returned (after
        # abort() when it failed): the markers have done their work
        if not getattr(self, "_aborted", True):
            self._recorded()
            self._inherited.finish()


def read_import_files(output_dir: str | Path, kind: str | None = None) -> list[dict[str, str]]:
    """What a CRM holds after importing every complete file set in order.

    Reads the manifests (a file without one is incomplete and skipped), checks
    each file's SHA-256, and applies rows as upserts by the file's key column.
    ``kind`` picks a file kind (default: the interaction file of the
    profile). Each row gets ``interaction_id`` or ``identity_id`` (= its key).
    """
    directory = Path(output_dir)
    held: dict[str, dict[str, str]] = {}
    manifests = [(json.loads(m.read_text(encoding="utf-8")), m) for m in directory.glob("manifest-*.json")]
    for data, manifest in sorted(manifests, key=lambda dm: (dm[0]["written_at"], dm[1].name)):
        for entry in data["files"]:
            if entry["source"] == "deletion" and (kind is None or entry["kind"] == f"deletions-{kind}"):
                with open(directory / entry["file"], encoding="utf-8", newline="") as fh:
                    for row in csv.DictReader(fh):
                        held.pop(row[entry["key"]], None)  # an erasure: the CRM deletes the record
                continue
            if (kind is None and entry["source"] != "interaction") or (kind is not None and entry["kind"] != kind):
                continue
            path = directory / entry["file"]
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
                msg = f"{path}: checksum does not match {manifest.name}"
                raise ValueError(msg)
            with open(path, encoding="utf-8-sig", newline="") as fh:
                for row in csv.DictReader(fh):
                    key = row[entry["key"]]
                    row["interaction_id" if entry["source"] == "interaction" else "identity_id"] = key
                    held[key] = row
    return list(held.values())
