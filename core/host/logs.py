"""Logging setup: quiet text or JSON lines on stderr, secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
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
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False
