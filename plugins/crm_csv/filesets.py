"""What a crashed run leaves in an output directory, and how the next run settles it.

A file set becomes visible to importers when its manifest is renamed into
place. Just before that, the sink writes ``.pending-<set>.json``: the
interaction versions the set holds. The marker outlives the run only when the
run ended before the ledger recorded them (a crash, a failed ledger write).
On its next start the sink reads the markers:

* marker and manifest: the set is complete and importable, but the ledger does
  not know it. Its versions are *already delivered*: when they come again the
  sink returns their receipts without writing them a second time.
* marker, no manifest: the set never became visible. Its CSV files are removed;
  the ledger has nothing of it, so its records are delivered again.

CSV files without a manifest or marker (a crash between renaming a set's files
and writing its marker) and temporary files of earlier runs are removed too.
Only files of other runs are touched: parallel parts of the current run (the
sink lock keeps other runs out) share the directory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_SET = re.compile(r"^[^.]+?-(\d{8}T\d{6}\.\d{6}Z-[0-9a-zA-Z]+-(?:p\d+-)?\d{3})\.csv$")
_PENDING = "pending-"


def marker_path(directory: Path, base: str) -> Path:
    return directory / f".{_PENDING}{base}.json"


#: Runs that carry a marker's unseen versions before it is dropped (they were in the ledger after all).
KEEP_RUNS = 5


def write_marker(directory: Path, base: str, receipts: list[tuple[str, int]] | list[list[Any]], runs: int = 0) -> Path:
    """Write (fsynced) the versions a set holds, before its manifest goes in place."""
    path = marker_path(directory, base)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"manifest": f"manifest-{base}.json", "receipts": receipts, "runs": runs}, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


class Inherited:
    """Markers of complete sets an interrupted run left, and the versions they hold."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}  # interaction id -> version, not yet seen again
        self.markers: dict[Path, dict[str, Any]] = {}

    def seen(self, iid: str) -> None:
        self.versions.pop(iid, None)

    def finish(self) -> None:
        """The run ended well: a marker whose versions all came again (their receipts
        are recorded now) goes; one with versions that did not come is carried, for
        a later run that delivers them, at most :data:`KEEP_RUNS` runs."""
        for path, data in self.markers.items():
            left = [[iid, v] for iid, v in data["receipts"] if self.versions.get(iid) == v]
            runs = int(data.get("runs", 0)) + 1
            if not left or runs >= KEEP_RUNS:
                path.unlink(missing_ok=True)
            else:
                write_marker(path.parent, path.name[len(_PENDING) + 1 : -len(".json")], left, runs)
        self.markers = {}


def settle(directory: Path, run_tag: str) -> tuple[Inherited, list[str]]:
    """Settle what runs other than ``run_tag`` left: returns (the complete sets the
    ledger may lack, lines for the run report)."""
    inherited = Inherited()
    already = inherited.versions
    notes: list[str] = []
    for stale in directory.glob(".*.tmp"):
        if run_tag not in stale.name:
            stale.unlink(missing_ok=True)  # an earlier run's, never counted as delivered
    bases_with_manifest = {m.name[len("manifest-"):-len(".json")] for m in directory.glob("manifest-*.json")}
    removed = 0
    for marker in directory.glob(f".{_PENDING}*.json"):
        base = marker.name[len(_PENDING) + 1 : -len(".json")]
        if run_tag in base:
            continue
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            data = None  # torn: written before its manifest, so the manifest cannot exist either
        if data is not None and base in bases_with_manifest:
            for iid, version in data["receipts"]:
                already[iid] = max(version, already.get(iid, 0))
            inherited.markers[marker] = data
            continue
        removed += _remove_set(directory, base)
        marker.unlink(missing_ok=True)
    # a crash between renaming a set's files and writing its marker: no marker, no manifest
    for csv_file in directory.glob("*.csv"):
        m = _SET.match(csv_file.name)
        if m and run_tag not in m.group(1) and m.group(1) not in bases_with_manifest and not marker_path(directory, m.group(1)).exists():
            csv_file.unlink(missing_ok=True)
            removed += 1
    if already:
        notes.append(f"{len(already)} record(s) of file sets an interrupted run completed are recognised: their receipts are recorded, they are not written again")
    if removed:
        notes.append(f"removed {removed} file(s) of file sets an interrupted run left without a manifest (their records are delivered again)")
    return inherited, notes


def _remove_set(directory: Path, base: str) -> int:
    n = 0
    for csv_file in directory.glob(f"*-{base}.csv"):
        csv_file.unlink(missing_ok=True)
        n += 1
    return n


__all__ = ["KEEP_RUNS", "Inherited", "marker_path", "settle", "write_marker"]
