"""The ``singer`` sink: pipe new deliveries into any Singer target.

The sink writes SCHEMA, RECORD and STATE messages to the target's stdin. A
delivery counts as durable, and its ledger entry is written, only when the
target echoes a STATE message that covers it (targets emit the STATE they
received once the records before it are flushed). When the target fails, what
its STATE had covered is handed to the runner with the error, so only the rest
is sent again.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crmsync


class SingerSink(crmsync.Sink):
    """Interactions into any Singer target (target-jsonl, target-postgres, ...)."""

    name = "singer"
    description = "Pipes deliveries into a Singer target; the ledger moves only on the target's STATE."
    batch_size = 500
    config_schema = {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "The target executable and fixed arguments, e.g. [\"target-jsonl\"]."},
            "config": {"type": "object", "default": {}, "description": "The target's own config (written to a temporary --config file)."},
            "stream": {"type": "string", "default": "interactions", "description": "Stream name the records are sent as."},
            "records_per_process": {"type": "integer", "minimum": 1, "default": 50000, "description": "Restart the target after this many records (each run of it ends with a flush)."},
            "batch_size": {"type": "integer", "minimum": 1, "default": 500, "description": "Records between STATE messages: the unit the target confirms."},
        },
        "required": ["command"],
    }

    def open(self) -> None:
        self.flush_every = self.config["records_per_process"]
        self.batch_size = self.config["batch_size"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._batches: dict[int, list[crmsync.Receipt]] = {}
        self._seq = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="crmsync-target-")
        self._schema = crmsync.flat_json_schema(crmsync.Interaction)

    def _start(self) -> subprocess.Popen[bytes]:
        cfg = Path(self._tmp.name) / "config.json"
        cfg.write_text(json.dumps(self.config["config"]))
        args = [*self.config["command"], "--config", str(cfg)]
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.context.config_dir, env=os.environ.copy())
        except OSError as exc:
            msg = f"cannot start the target {args[0]!r}: {exc}"
            raise crmsync.FatalError(msg, plugin=self.instance) from None
        self._states: list[Any] = []
        self._stderr: list[bytes] = []

        def read_out() -> None:
            for line in proc.stdout:
                try:
                    self._states.append(json.loads(line))
                except ValueError:
                    continue

        def read_err() -> None:
            for line in proc.stderr:
                self._stderr.append(line)
                del self._stderr[:-30]

        self._readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for t in self._readers:
            t.start()
        schema = {"type": "SCHEMA", "stream": self.config["stream"], "schema": self._schema, "key_properties": ["interaction_id"]}
        self._send(proc, schema)
        return proc

    def _send(self, proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        try:
            proc.stdin.write((json.dumps(message, ensure_ascii=False) + "\n").encode())
        except BrokenPipeError:
            self._proc = None
            code, receipts = self._finish(proc)
            msg = f"the target exited early (code {code}): {self._stderr_tail()}"
            raise crmsync.FatalError(msg, plugin=self.instance, receipts=receipts) from None

    def _stderr_tail(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")[-1500:]

    def _finish(self, proc: subprocess.Popen[bytes]) -> tuple[int, list[crmsync.Receipt]]:
        """Wait for the target to exit; the receipts its last STATE covers."""
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        code = proc.wait()
        for t in self._readers:
            t.join(timeout=10)
        covered = max((s.get("crmsync_batch", 0) for s in self._states if isinstance(s, dict)), default=0)
        receipts = [r for n, batch in sorted(self._batches.items()) if n <= covered for r in batch]
        self._batches = {n: b for n, b in self._batches.items() if n > covered}
        if code != 0 and receipts:
            self.note(f"{len(receipts)} record(s) were confirmed by the target's STATE before it failed")
        return code, receipts

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> None:
        if self._proc is None:
            self._proc = self._start()
        for d in deliveries:
            self._send(self._proc, {"type": "RECORD", "stream": self.config["stream"], "record": d.interaction.to_json_dict()})
        self._seq += 1
        self._batches[self._seq] = [d.receipt() for d in deliveries]
        self._send(self._proc, {"type": "STATE", "value": {"crmsync_batch": self._seq}})
        return None

    def flush(self) -> list[crmsync.Receipt]:
        if self._proc is None:
            return []
        proc, self._proc = self._proc, None
        code, receipts = self._finish(proc)
        if code != 0:
            msg = f"the target {self.config['command'][0]!r} exited with code {code}: {self._stderr_tail()}"
            raise crmsync.FatalError(msg, plugin=self.instance, receipts=receipts)
        if self._batches:
            self.note(f"the target confirmed STATE up to batch {min(self._batches) - 1}; {sum(len(b) for b in self._batches.values())} record(s) stay pending")
            self._batches = {}
        return receipts

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        """Erasure as Singer targets know it: a RECORD per deleted interaction with its key
        and ``_sdc_deleted_at`` (the Singer SDK's convention: targets with
        ``hard_delete`` remove the row, others keep it marked deleted), under a SCHEMA
        that has the property and requires nothing else. Confirmed by the target's STATE."""
        from datetime import UTC, datetime

        proc = self._start()
        props = {**self._schema.get("properties", {}), "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
        schema = {**self._schema, "properties": props, "required": ["interaction_id"]}
        self._send(proc, {"type": "SCHEMA", "stream": self.config["stream"], "schema": schema, "key_properties": ["interaction_id"]})
        now = datetime.now(UTC).isoformat()
        for d in deletions:
            self._send(proc, {"type": "RECORD", "stream": self.config["stream"], "record": {"interaction_id": d.interaction_id, "_sdc_deleted_at": now}})
        self._seq += 1
        self._batches[self._seq] = [crmsync.Receipt(d.interaction_id, d.version) for d in deletions]
        self._send(proc, {"type": "STATE", "value": {"crmsync_batch": self._seq}})
        code, receipts = self._finish(proc)
        if code != 0:
            msg = f"the target {self.config['command'][0]!r} exited with code {code}: {self._stderr_tail()}"
            raise crmsync.FatalError(msg, plugin=self.instance)
        return [r.interaction_id for r in receipts]

    def delete_people(self, identity_ids: Sequence[str]) -> list[str]:
        return list(identity_ids)  # the target gets interactions only: no people records to delete

    def abort(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._batches = {}

    def close(self) -> None:
        self._tmp.cleanup()
