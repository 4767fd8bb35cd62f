"""Test-only plugins: a scriptable source, a real SQLite upsert sink, enrichers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import crmsync


def _bump(path: Path) -> int:
    """Increment a counter kept in a file (survives across runs and processes)."""
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


class ListSource(crmsync.Source):
    """Interactions from config: items [{id, title}], with scripted failures."""

    name = "list"
    channel = "feed"
    config_schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object"}, "default": []},
            "fail_at": {"type": "integer", "default": -1, "description": "raise FatalError before item n"},
            "retriable_failures": {"type": "integer", "default": 0, "description": "raise RetriableError at fail_at this many times"},
            "retry_after": {"type": "number"},
            "reject_ids": {"type": "array", "items": {"type": "string"}, "default": []},
            "counter": {"type": "string", "default": "counter.txt"},
            "note_pid": {"type": "boolean", "default": False, "description": "add a note naming the process that read the source"},
            "die_at": {"type": "integer", "default": -1, "description": "SIGKILL the reading process before item n (an out-of-memory kill)"},
            "sleep": {"type": "number", "default": 0, "description": "seconds to wait before each item"},
        },
    }

    def read(self, state):
        if self.config["note_pid"]:
            self.notes.append(f"pid {os.getpid()}")
        done = (state or {}).get("done", 0)
        for n, item in enumerate(self.config["items"]):
            if n < done:
                continue
            if n == self.config["die_at"]:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.config["sleep"]:
                time.sleep(self.config["sleep"])
            if n == self.config["fail_at"]:
                if self.config["retriable_failures"]:
                    if _bump(self.resolve_path(self.config["counter"])) <= self.config["retriable_failures"]:
                        raise crmsync.RetriableError("flaky upstream", retry_after=self.config.get("retry_after"))
                else:
                    raise crmsync.FatalError("upstream is gone")
            yield from self.replay(f"item {n}", json.dumps(item).encode())
            yield crmsync.Checkpoint({"done": n + 1})

    def replay(self, ref, raw):
        item = json.loads(raw)
        if item["id"] in self.config["reject_ids"]:
            yield self.reject(ref, f"item {item['id']} is on the reject list", raw)
            return
        yield self.interaction(native_id=item["id"], scope="list", kind="post", title=item.get("title"), body_text=item.get("body", "text"), author=crmsync.Identity(name=item.get("author", "Ann"), emails=[item.get("email", "ann@example.org")]))


class SqliteSink(crmsync.Sink):
    """A real target: a SQLite table, upsert by interaction_id, with scripted failures."""

    name = "sqlite_target"
    batch_size = 3
    config_schema = {
        "type": "object",
        "properties": {
            "db": {"type": "string"},
            "fail": {"type": "string", "enum": ["never", "always", "retriable", "partial"], "default": "never", "description": "partial: write the first row of a batch, then raise RetriableError with its receipt"},
            "retriable_failures": {"type": "integer", "default": 1},
            "counter": {"type": "string", "default": "sink-counter.txt"},
            "refuse_titles": {"type": "array", "items": {"type": "string"}, "default": [], "description": "rows with these titles are refused, as an API refuses a row of a batch"},
        },
        "required": ["db"],
    }

    def open(self):
        self.conn = sqlite3.connect(self.resolve_path(self.config["db"]))
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, title TEXT, version INTEGER, writes INTEGER)")

    def write(self, deliveries):
        if self.config["fail"] == "always":
            raise crmsync.FatalError("target rejected the login")
        if self.config["fail"] == "retriable" and _bump(self.resolve_path(self.config["counter"])) <= self.config["retriable_failures"]:
            raise crmsync.RetriableError("HTTP 503", retry_after=0.05)
        if self.config["fail"] == "partial" and len(deliveries) > 1 and _bump(self.resolve_path(self.config["counter"])) <= self.config["retriable_failures"]:
            first = deliveries[0]
            with self.conn:
                self.conn.execute(
                    "INSERT INTO t VALUES (?, ?, ?, 1) ON CONFLICT(id) DO UPDATE SET title=excluded.title, version=excluded.version, writes=writes+1",
                    (first.interaction.interaction_id, first.interaction.title, first.version),
                )
            raise crmsync.RetriableError("HTTP 503 after the first row", retry_after=0.05, receipts=[first.receipt(external_id="T-" + first.interaction.interaction_id[:8])])
        written = []
        with self.conn:
            for d in deliveries:
                i = d.interaction
                if i.title in self.config["refuse_titles"]:
                    self.reject(d, f"title {i.title!r} is refused", request={"title": i.title}, response={"status": 400, "error": "REFUSED"})
                    continue
                written.append(d)
                self.conn.execute(
                    "INSERT INTO t VALUES (?, ?, ?, 1) ON CONFLICT(id) DO UPDATE SET title=excluded.title, version=excluded.version, writes=writes+1",
                    (i.interaction_id, i.title, d.version),
                )
        return [d.receipt(external_id="T-" + d.interaction.interaction_id[:8]) for d in written]

    def close(self):
        if hasattr(self, "conn"):
            self.conn.close()


class ParallelSqliteSink(SqliteSink):
    """The SQLite target, delivered by several worker processes; one of them can die."""

    name = "sqlite_parallel"
    batch_size = 100
    parallel = True
    config_schema = {
        "type": "object",
        "properties": {**SqliteSink.config_schema["properties"], "die_in_part": {"type": "integer", "default": -1, "description": "SIGKILL the worker of this part at its third write"}},
        "required": ["db"],
    }

    def write(self, deliveries):
        self.writes = getattr(self, "writes", 0) + 1
        if self.context.part == self.config["die_in_part"] and self.writes == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        receipts = super().write(deliveries)
        self.notes.append(f"part {self.context.part}") if self.writes == 1 else None
        return receipts


def target_rows(db: Path) -> dict[str, tuple[str, int, int]]:
    conn = sqlite3.connect(db)
    try:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, title, version, writes FROM t")}
    finally:
        conn.close()


class FlagEnricher(crmsync.Enricher):
    name = "flag"

    def enrich(self, interaction):
        interaction.needs_response = "?" in (interaction.title or "")
        interaction.priority = "high" if interaction.needs_response else "normal"
        return interaction


class BrokenEnricher(crmsync.Enricher):
    name = "broken"

    def enrich(self, interaction):
        raise RuntimeError("model file missing")


@crmsync.hookimpl
def register_sources(register):
    register(ListSource)


@crmsync.hookimpl
def register_sinks(register):
    register(SqliteSink)
    register(ParallelSqliteSink)


@crmsync.hookimpl
def register_enrichers(register):
    register(FlagEnricher)
    register(BrokenEnricher)
