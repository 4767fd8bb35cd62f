#!/usr/bin/env python3
"""Anchor 1, the Singer transport: a singer-sdk tap that emits already-normalized
records from a JSON Lines file (one stream, ``interaction_id`` as key).

    python tap_records.py --config '{"path": "records.jsonl"}' | target-jsonl ...

Runs with the project's Python (singer-sdk from the test extra); the stream
schema names crmsync's shared fields, loosely typed.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th


@functools.cache
def _schema(path: str) -> dict[str, Any]:
    # The shared schema's top-level fields, each typed loosely: the transport then costs
    # what Singer itself costs (a strict nested schema makes singer-sdk's conformance and
    # target-jsonl's validation many times slower, which would flatter crmsync).
    # ``path``: crmsync's flat JSON Schema of an Interaction, written by bench_all.py
    # (this tap runs in its own venv, without crmsync).

    def types(prop: dict[str, Any]) -> set[str]:
        found = set()
        for p in [prop, *prop.get("anyOf", [])]:
            t = p.get("type")
            found |= set(t) if isinstance(t, list) else ({t} if t else set())
        return found | {"null"}

    def loose(prop: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": sorted(types(prop))}
        if "array" in out["type"]:
            items = prop.get("items") or next((p.get("items") for p in prop.get("anyOf", []) if p.get("items")), {})
            if "object" in types(items):
                return prop  # singer-sdk needs the properties of objects inside arrays
            out["items"] = {"type": sorted(types(items) - {"array"})}
        return out

    with open(path, encoding="utf-8") as fh:
        fields = json.load(fh)["properties"]
    return {"type": "object", "properties": {name: loose(prop) for name, prop in fields.items()}}


class RecordsStream(Stream):
    name = "interactions"
    primary_keys = ("interaction_id",)

    @property
    def schema(self) -> dict[str, Any]:  # type: ignore[override]
        return _schema(self.config["schema"])

    def get_records(self, context: Any) -> Any:
        with open(self.config["path"], encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)


class TapRecords(Tap):
    name = "tap-bench-records"
    config_jsonschema = th.PropertiesList(th.Property("path", th.StringType, required=True), th.Property("schema", th.StringType, required=True)).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [RecordsStream(self)]


if __name__ == "__main__":
    TapRecords.cli()
