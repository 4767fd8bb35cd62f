#!/usr/bin/env python3
"""Anchor 1, the Singer transport: a singer-sdk tap that emits already-normalized
records from a JSON Lines file (one stream, ``interaction_id`` as key).

    python tap_records.py --config '{"path": "records.jsonl"}' | target-jsonl ...

Runs with any Python that has singer-sdk; the schema is read from the first
line's keys so the tap needs nothing from crmsync.
"""

from __future__ import annotations

import json
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th


def _schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        first = json.loads(fh.readline())
    props = []
    for key, value in first.items():
        if isinstance(value, dict):
            props.append(th.Property(key, th.ObjectType(additional_properties=True)))
        elif isinstance(value, list):
            props.append(th.Property(key, th.ArrayType(th.CustomType({}))))
        elif isinstance(value, bool):
            props.append(th.Property(key, th.BooleanType))
        elif isinstance(value, int | float):
            props.append(th.Property(key, th.NumberType))
        else:
            props.append(th.Property(key, th.StringType))
    schema = th.PropertiesList(*props).to_dict()
    for prop in schema["properties"].values():  # any field may be null in some record
        t = prop.get("type")
        if isinstance(t, str):
            prop["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            prop["type"] = [*t, "null"]
    return schema


class RecordsStream(Stream):
    name = "interactions"
    primary_keys = ("interaction_id",)

    @property
    def schema(self) -> dict[str, Any]:  # type: ignore[override]
        return _schema(self.config["path"])

    def get_records(self, context: Any) -> Any:
        with open(self.config["path"], encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)


class TapRecords(Tap):
    name = "tap-bench-records"
    config_jsonschema = th.PropertiesList(th.Property("path", th.StringType, required=True)).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [RecordsStream(self)]


if __name__ == "__main__":
    TapRecords.cli()
