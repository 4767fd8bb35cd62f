"""A recording HTTP receiver: a loopback server that stands in for a remote target
(a webhook, a REST API) in a sink's tests, and gives the kit a ready ``read_back``.

It keeps every request, holds JSON bodies by a key (upsert: the latest body of a key
wins; ``DELETE /.../KEY`` removes it) and de-duplicates by ``Idempotency-Key`` when the
sink sends one. ``fail(status, times)`` makes the next requests fail, as a flaky
target would::

    receiver = RecordingReceiver(key="interaction_id")
    TestMySink = get_sink_test_class(MySink, {"url": receiver.url}, read_back=receiver.read_back)
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingReceiver:
    """See the module doc. Started on construction; ``close()`` stops it."""

    def __init__(self, *, key: str = "interaction_id") -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.held: dict[str, Any] = {}
        self.seen_keys: dict[str, Any] = {}  # Idempotency-Key -> the answer given
        self._failures: list[int] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw})
                    if outer._failures:
                        return self._answer(outer._failures.pop(0), {"error": "injected failure"})
                    idem = self.headers.get("Idempotency-Key")
                    if idem and idem in outer.seen_keys:
                        return self._answer(200, outer.seen_keys[idem])  # a resend: answered as the first time
                    if self.command == "DELETE":
                        outer.held.pop(self.path.rstrip("/").rsplit("/", 1)[-1], None)
                        return self._answer(204)
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        return self._answer(400, {"error": "invalid JSON"})
                    items = body if isinstance(body, list) else [body]
                    for item in items:
                        if not isinstance(item, dict) or outer.key not in item:
                            return self._answer(422, {"error": f"each item needs {outer.key!r}"})
                    for item in items:
                        outer.held[str(item[outer.key])] = item
                    answer = {"received": len(items)}
                    if idem:
                        outer.seen_keys[idem] = answer
                    return self._answer(200, answer)

            do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def fail(self, status: int, times: int = 1) -> None:
        """The next ``times`` requests get ``status`` (503, 429, 400...)."""
        with self._lock:
            self._failures.extend([status] * times)

    def read_back(self, _options: Any = None, _directory: Any = None) -> list[dict[str, Any]]:
        """What the target holds (for ``get_sink_test_class(read_back=...)``)."""
        with self._lock:
            return [dict(v) for v in self.held.values()]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ReceiverPool:
    """One :class:`RecordingReceiver` per test directory, for the kit (each of its tests
    gets a target of its own)::

        pool = ReceiverPool()
        TestMySink = get_sink_test_class(MySink, lambda tmp: {"url": pool[tmp].url}, read_back=lambda o, tmp: pool[tmp].read_back())
    """

    def __init__(self, *, key: str = "interaction_id") -> None:
        self.key = key
        self._receivers: dict[str, RecordingReceiver] = {}

    def __getitem__(self, directory: Any) -> RecordingReceiver:
        name = str(directory)
        if name not in self._receivers:
            self._receivers[name] = RecordingReceiver(key=self.key)
        return self._receivers[name]

    def close(self) -> None:
        for r in self._receivers.values():
            r.close()
        self._receivers.clear()


__all__ = ["ReceiverPool", "RecordingReceiver"]
