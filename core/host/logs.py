"""Logging setup: quiet text or JSON lines on stderr, secrets redacted."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .secrets import redact


class RedactingFilter(logging.Filter):
    """Replace known secret values in every log message with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


#: the run this process works for (set by the runner; forked workers inherit it)
_run: dict[str, str | None] = {"run_id": None}
#: per thread: the source or sink being worked on
_local = threading.local()
_json = {"on": False}


def set_run(run_id: str | None) -> None:
    """Name the run every log line of this process belongs to."""
    _run["run_id"] = run_id


@contextlib.contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Log lines of this thread carry ``fields`` (``source=``, ``sink=``) meanwhile."""
    old = getattr(_local, "fields", {})
    _local.fields = {**old, **fields}
    try:
        yield
    finally:
        _local.fields = old


def context_fields() -> dict[str, Any]:
    """run_id and the bound source/sink of this thread (for a log record sent elsewhere)."""
    return {**({"run_id": _run["run_id"]} if _run["run_id"] else {}), **getattr(_local, "fields", {})}


def json_mode() -> bool:
    """Whether logs (and CLI errors) are JSON lines."""
    return _json["on"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id, source or sink
    (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # a worker's record carries its own context; a local one takes this thread's
        data.update(getattr(record, "crmsync", None) or context_fields())
        for role in ("source", "sink"):
            prefix = f"crmsync.{role}."
            if record.name.startswith(prefix) and role not in data:
                data[role] = record.name[len(prefix):]
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def error_line(message: str, **extra: Any) -> str:
    """A CLI error as a JSON log line (``--log-format json``)."""
    data = {"time": datetime.now(UTC).isoformat(), "level": "error", "logger": "crmsync.cli", "message": redact(message), **context_fields(), **extra}
    return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "warning", fmt: str = "text") -> None:
    """Configure the ``crmsync`` logger tree (idempotent)."""
    root = logging.getLogger("crmsync")
    for h in list(root.handlers):
        if getattr(h, "_crmsync", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._crmsync = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    _json["on"] = fmt == "json"
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
