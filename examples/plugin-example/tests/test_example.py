"""The example plugin runs the crmsync conformance kit, as any plugin should."""

import json

from crmsync.testing import get_source_test_class
from crmsync_example import JsonlNotesSource


def _notes(tmp):
    rows = [{"id": i, "author": "Ann", "email": "ann@example.org", "text": f"note {i}", "date": "2026-01-01T10:00:00+00:00"} for i in range(3)]
    (tmp / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"path": "notes.jsonl"}


def _bad(tmp):
    (tmp / "bad.jsonl").write_text('{"id": 1, "text": "ok"}\n{not json\n{"text": "no id"}\n')
    return {"path": "bad.jsonl"}


TestJsonlNotes = get_source_test_class(JsonlNotesSource, _notes, bad_config=_bad, min_records=3)
