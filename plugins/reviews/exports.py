"""A JSON or JSON Lines export's review records as plain data: each one with where it
comes from (``file:line`` or ``file:n``) and its raw text, or why it is not a review.
The source (source.py) picks the preset and turns each record into an interaction;
CSV exports are read by ``crmsync.read_csv``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .presets import PRESETS


@dataclass(frozen=True)
class Entry:
    """One review record of an export, or (``record`` None) input that is not one."""

    where: str
    record: Any
    raw: str
    problem: str | None = None


def jsonl_entries(ref: str, lines: Iterable[str]) -> Iterator[Entry]:
    """A JSON Lines export, a line at a time (blank lines skipped)."""
    for n, ended in enumerate(lines, 1):
        line = ended.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            yield Entry(f"{ref}:{n}", json.loads(line), line)
        except (ValueError, RecursionError) as exc:
            yield Entry(f"{ref}:{n}", None, line, f"line {n} is not valid JSON: {exc}")


def json_entries(ref: str, text: str) -> tuple[str, Iterator[Entry]]:
    """A .json export: ``("json", its records)`` for one JSON document (a list, or an
    object holding the list), ``("jsonl", its values)`` for JSON values written one
    after another. Raises ``json.JSONDecodeError`` for anything else."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if not exc.msg.startswith("Extra data"):
            raise
        return "jsonl", _concatenated(ref, text)
    records: Any = doc
    if isinstance(doc, dict):
        for p in PRESETS.values():
            if p.records and isinstance(doc.get(p.records), list):
                records = doc[p.records]
                break
        else:
            records = next((v for v in doc.values() if isinstance(v, list)), [doc])
    if not isinstance(records, list):
        return "json", iter(())
    return "json", (Entry(f"{ref}:{n}", record, json.dumps(record, ensure_ascii=False)) for n, record in enumerate(records, 1))


def _concatenated(ref: str, text: str) -> Iterator[Entry]:
    """JSON values one after another (JSON Lines, or objects with no separator at all);
    a value that is not valid JSON is reported alone, and reading goes on at the next line."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            nxt = text.find("\n", pos)
            yield Entry(f"{ref}:{line}", None, text[pos : len(text) if nxt < 0 else nxt], f"line {line} is not valid JSON: {exc}")
            if nxt < 0:
                return
            pos = nxt + 1
            continue
        raw = text[pos:end]
        pos = end
        for record in value if isinstance(value, list) else [value]:
            if isinstance(record, dict):
                yield Entry(f"{ref}:{line}", record, raw)
            else:
                yield Entry(f"{ref}:{line}", None, raw, f"line {line} holds a JSON {type(record).__name__}, not a review object")
