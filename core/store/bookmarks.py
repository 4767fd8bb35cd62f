"""Each source's bookmark: where its next run starts. Written in the same
transaction as the records read before it (see ``interactions.write_batch``),
so it never runs ahead of the data."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from .database import Database, aware, utcnow
from .tables import bookmarks


class Bookmarks:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, source: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            value = conn.execute(select(bookmarks.c.state).where(bookmarks.c.source == source)).scalar()
        return None if value is None else json.loads(value)

    def set(self, source: str, state: dict[str, Any], run_id: str | None = None) -> None:
        with self.db.begin() as conn:
            write(conn, source, state, run_id, utcnow())

    def reset(self, source: str) -> None:
        with self.db.begin() as conn:
            conn.execute(delete(bookmarks).where(bookmarks.c.source == source))

    def all(self) -> dict[str, dict[str, Any]]:
        """``source -> {"state", "updated_at"}``."""
        with self.db.connect() as conn:
            return {row.source: {"state": json.loads(row.state), "updated_at": aware(row.updated_at).isoformat()} for row in conn.execute(select(bookmarks))}


def write(conn: Connection, source: str, state: dict[str, Any], run_id: str | None, now: datetime) -> None:
    """Store ``source``'s bookmark inside the caller's transaction."""
    data = json.dumps(state, sort_keys=True, default=str)
    done = conn.execute(update(bookmarks).where(bookmarks.c.source == source).values(state=data, run_id=run_id, updated_at=now))
    if done.rowcount == 0:
        conn.execute(insert(bookmarks).values(source=source, state=data, run_id=run_id, updated_at=now))
