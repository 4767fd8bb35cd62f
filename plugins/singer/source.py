"""The ``singer`` source: run any Singer tap and map its streams to the shared schema."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import crmsync

#: Interaction fields a stream mapping can fill from record fields (dotted paths).
MAPPABLE = ("native_id", "url", "title", "body_text", "body_html", "summary", "published", "updated", "language", "author_name",
            "author_email", "author_url", "author_handle", "in_reply_to", "rating", "tags")


def _get(record: Any, path: str | None) -> Any:
    if not path:
        return None
    value = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value == "" else value


class SingerSource(crmsync.Source):
    """Interactions from any Singer tap (its RECORD messages mapped per stream; its STATE kept as the bookmark)."""

    name = "singer"
    channel = "other"
    description = "Runs a Singer tap; maps its streams to interactions; keeps the tap's STATE as the bookmark."
    config_schema = {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "The tap executable and fixed arguments, e.g. [\"tap-csv\"]."},
            "config": {"type": "object", "default": {}, "description": "The tap's own config (written to a temporary --config file)."},
            "catalog": {"type": "string", "description": "A catalog file to pass with --catalog (default: none)."},
            "channel": {"type": "string", "default": "other", "pattern": "^(feed|email|review|social|chat|other|x-[a-z0-9][a-z0-9_-]*)$", "description": "Channel family of the ids: feed, email, review, social, chat, other, or x-<name> for a family of your own."},
            "streams": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "default": "post"},
                        "scope": {"type": "string", "description": "Scope of the native ids (default: the stream name)."},
                        "fields": {"type": "object", "properties": {f: {"type": "string"} for f in MAPPABLE}, "additionalProperties": False, "required": ["native_id"]},
                        "rating_scale": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2, "default": [1, 5]},
                    },
                    "required": ["fields"],
                    "additionalProperties": False,
                },
                "description": "Per tap stream: which record field fills which interaction field. Streams not listed are ignored.",
            },
        },
        "required": ["command", "streams"],
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        with tempfile.TemporaryDirectory(prefix="crmsync-singer-") as tmp:
            cfg = Path(tmp) / "config.json"
            cfg.write_text(json.dumps(self.config["config"]))
            args = [*self.config["command"], "--config", str(cfg)]
            if state and state.get("singer_state") is not None:
                st = Path(tmp) / "state.json"
                st.write_text(json.dumps(state["singer_state"]))
                args += ["--state", str(st)]
            if self.config.get("catalog"):
                args += ["--catalog", str(self.resolve_path(self.config["catalog"]))]
            try:
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.context.config_dir, env=os.environ.copy())
            except OSError as exc:
                msg = f"cannot start the tap {args[0]!r}: {exc}"
                raise crmsync.FatalError(msg, plugin=self.instance) from None
            stderr_tail: list[bytes] = []
            import threading

            def drain() -> None:
                for line in proc.stderr:
                    stderr_tail.append(line)
                    del stderr_tail[:-20]

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            for n, line in enumerate(proc.stdout, 1):
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except (ValueError, RecursionError):
                    yield self.reject(f"{args[0]} stdout {_digest(line)}", f"not a Singer message (invalid JSON, stdout line {n} of this run)", line)
                    continue
                if not isinstance(msg, dict):
                    yield self.reject(f"{args[0]} stdout {_digest(line)}", f"not a Singer message (not a JSON object, stdout line {n} of this run)", line)
                    continue
                kind = msg.get("type")
                if kind == "RECORD":
                    yield from self._record(msg, line, n)
                elif kind == "STATE":
                    # the tap says everything before this line is done
                    yield crmsync.Checkpoint({"singer_state": msg.get("value")})
            code = proc.wait()
            t.join(timeout=5)
            if code != 0:
                msg = f"the tap {args[0]!r} exited with code {code}: {b''.join(stderr_tail).decode('utf-8', 'replace')[-1500:]}"
                raise crmsync.FatalError(msg, plugin=self.instance)

    def _record(self, msg: dict[str, Any], line: bytes, n: int) -> Iterator[crmsync.Record]:
        spec = self.config["streams"].get(msg.get("stream"))
        if spec is None:
            return
        record = msg.get("record") or {}
        f = spec["fields"]
        # a reference that is the same on every run (the line number is not): the same bad
        # record is one quarantine entry, re-opened, not a new one each run
        ref = f"{msg.get('stream')}:{_digest(line)}"
        try:
            native = _get(record, f["native_id"])
            if native is None:
                yield self.reject(ref, f"record has no {f['native_id']!r} for the native id (stdout line {n} of this run)", line)
                return
            ref = f"{msg.get('stream')}:{native}"
            author = None
            if any(_get(record, f.get(k)) for k in ("author_name", "author_email", "author_url", "author_handle")):
                author = crmsync.Identity(
                    name=_get(record, f.get("author_name")),
                    emails=[str(_get(record, f.get("author_email")))] if _get(record, f.get("author_email")) else [],
                    profile_urls=[str(_get(record, f.get("author_url")))] if _get(record, f.get("author_url")) else [],
                    handles=[str(_get(record, f.get("author_handle")))] if _get(record, f.get("author_handle")) else [],
                )
            rating = _get(record, f.get("rating"))
            worst, best = spec.get("rating_scale", [1, 5])
            tags = _get(record, f.get("tags"))
            yield self.interaction(
                native_id=str(native),
                scope=spec.get("scope") or msg.get("stream"),
                kind=spec.get("kind", "post"),
                url=_get(record, f.get("url")),
                title=_get(record, f.get("title")),
                body_text=_get(record, f.get("body_text")),
                body_html=_get(record, f.get("body_html")),
                summary=_get(record, f.get("summary")),
                published=_date(_get(record, f.get("published"))),
                updated=_date(_get(record, f.get("updated"))),
                language=_get(record, f.get("language")),
                author=author,
                rating=crmsync.Rating(value=float(rating), best=best, worst=worst) if rating not in (None, "") else None,
                tags=[str(t) for t in tags] if isinstance(tags, list) else ([str(tags)] if tags else []),
                extra={"singer_stream": msg.get("stream")},
            )
        except Exception as exc:  # noqa: BLE001 - one record that cannot be mapped never fails the tap's stream (no I/O here)
            yield self.reject(ref, f"cannot map record: {crmsync.describe_failure(exc)}", line)

    def interaction(self, **fields: Any) -> crmsync.Interaction:
        fields.setdefault("fetched", self.context.run_started)
        return crmsync.Interaction.create(source=self.instance, channel=self.config["channel"], **fields)


def _digest(line: bytes) -> str:
    return "sha256:" + hashlib.sha256(line.strip()).hexdigest()[:16]


def _date(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
