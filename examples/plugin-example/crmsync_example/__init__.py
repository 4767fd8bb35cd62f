"""An example third-party crmsync plugin (the README's plugin tutorial builds it).

It registers:

* the ``jsonl_notes`` source: one interaction per line of a JSON Lines file
  with ``id``, ``author``, ``email``, ``text`` and ``date``;
* the ``api_notes`` source: the same notes from an HTTP API, on crmsync's REST helpers;
* the ``word_count`` enricher: ``extra["word_count"]`` for each interaction;
* the ``crmsync example-hello`` command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import click

import crmsync


class JsonlNotesSource(crmsync.Source):
    """Notes from a JSON Lines file, one per line."""

    name = "jsonl_notes"
    channel = "other"
    description = "Notes from a JSON Lines file (id, author, email, text, date)."
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "The .jsonl file."}},
        "required": ["path"],
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        path = self.resolve_path(self.config["path"])
        done = (state or {}).get("lines", 0)
        lines = path.read_bytes().splitlines()
        for n, line in enumerate(lines[done:], done + 1):
            yield from self.replay(f"{path}:{n}", line)
        yield crmsync.Checkpoint({"lines": len(lines)})

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        try:
            row = json.loads(raw)
            yield self.interaction(
                native_id=str(row["id"]),
                scope="example-notes",
                kind="note",
                body_text=row["text"],
                published=datetime.fromisoformat(row["date"]) if row.get("date") else None,
                author=crmsync.Identity(name=row.get("author"), emails=[row["email"]] if row.get("email") else []),
            )
        except (ValueError, KeyError, TypeError) as exc:
            yield self.reject(ref, f"bad note: {type(exc).__name__}: {exc}", raw)


class ApiNotesSource(JsonlNotesSource):
    """The same notes from an HTTP API (``GET /notes?since=...&cursor=...`` answering
    ``{"notes": [...], "next": CURSOR}``), on crmsync's REST helpers: auth, pagination,
    retries, error mapping and the incremental bookmark come with them."""

    name = "api_notes"
    description = "Notes from an HTTP API, read incrementally by their 'updated' time."
    config_schema = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "token": {"type": "string", "secret": True, "description": "env:NAME or file:PATH"}},
        "required": ["url", "token"],
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        client = crmsync.RestClient(self.config["url"], auth=crmsync.bearer(self.config["token"]), plugin=self.instance)
        since = crmsync.ReplicationKey("updated", state)
        try:
            for row in client.paginate("/notes", params=since.params("since"), paginator=crmsync.Cursor("next"), records="notes"):
                yield from self.replay(f"{self.config['url']}/notes#{row.get('id')}", json.dumps(row).encode())
                since.observe(row)
        finally:
            client.close()
        yield crmsync.Checkpoint(since.state())


class WordCountEnricher(crmsync.Enricher):
    """Counts the words of each interaction's text."""

    name = "word_count"
    description = "extra['word_count']: words in body_text."

    def enrich(self, interaction: crmsync.Interaction) -> crmsync.Interaction:
        interaction.extra["word_count"] = len((interaction.body_text or "").split())
        return interaction


@crmsync.hookimpl
def register_sources(register: Callable[[type[crmsync.Source]], None]) -> None:
    register(JsonlNotesSource)
    register(ApiNotesSource)


@crmsync.hookimpl
def register_enrichers(register: Callable[[type[crmsync.Enricher]], None]) -> None:
    register(WordCountEnricher)


@crmsync.hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="example-hello")
    @click.argument("name", default="world")
    def hello(name: str) -> None:
        """Say hello (from the example plugin)."""
        click.echo(f"hello, {name}, from crmsync-example")
