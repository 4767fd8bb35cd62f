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


# the HTTP API source, against a small local API
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from crmsync_example import ApiNotesSource

NOTES = [{"id": f"a{i}", "author": "Bo", "email": "bo@example.org", "text": f"api note {i}", "date": "2026-01-02T10:00:00+00:00", "updated": f"2026-01-02T10:0{i}:00Z"} for i in range(5)]


class _Api(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.headers.get("Authorization") != "Bearer example-token":
            self.send_response(401)
            self.end_headers()
            return
        q = parse_qs(urlsplit(self.path).query)
        rows = [n for n in NOTES if n["updated"] > q.get("since", [""])[0]]
        at = int(q.get("cursor", ["0"])[0])
        page = {"notes": rows[at : at + 2], "next": str(at + 2) if at + 2 < len(rows) else None}
        data = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


_server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
threading.Thread(target=_server.serve_forever, daemon=True).start()
os.environ["EXAMPLE_API_TOKEN"] = "example-token"

TestApiNotes = get_source_test_class(ApiNotesSource, {"url": f"http://127.0.0.1:{_server.server_address[1]}", "token": "env:EXAMPLE_API_TOKEN"}, min_records=5)
