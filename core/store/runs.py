"""Run records: one row per ``crmsync run`` with its report (``crmsync status``)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from sqlalchemy import insert, select, update

from .database import Database, aware, utcnow
from .tables import runs


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, run_id: str, command: str) -> None:
        with self.db.begin() as conn:
            # a run that was killed never finished: say so
            conn.execute(update(runs).where(runs.c.status == "running").values(status="abandoned"))
            conn.execute(insert(runs).values(run_id=run_id, started_at=utcnow(), status="running", pid=os.getpid(), host=socket.gethostname(), command=command))

    def finish(self, run_id: str, status: str, report: dict[str, Any]) -> None:
        with self.db.begin() as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(finished_at=utcnow(), status=status, report=json.dumps(report, default=str)))

    def recent(self, limit: int = 5) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit)).all()
        return [_run(r) for r in rows]

    def get(self, run_id: str) -> dict[str, Any] | None:
        """One run by its id, or by a prefix of it that only it has."""
        with self.db.connect() as conn:
            rows = conn.execute(select(runs).where(runs.c.run_id.startswith(run_id, autoescape=True)).limit(2)).all()
        if len(rows) != 1:
            return None
        return _run(rows[0])


def _run(r: Any) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "started_at": aware(r.started_at).isoformat(),
        "finished_at": aware(r.finished_at).isoformat() if r.finished_at else None,
        "status": r.status,
        "command": r.command,
        "report": json.loads(r.report) if r.report else None,
    }
