"""Local servers that stand in for SaaS CRM APIs in the tests and benchmarks.

:func:`serve` is their one HTTP/1.1 server: it reads each request, hands it to
the fake's ``respond(method, path, headers, body)`` and writes the answer, or
drops the connection unanswered when the fake applied a write it must not
acknowledge (the client cannot know the outcome).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """What a fake answers: a status, a body (JSON-able, text or None), headers; or ``drop``."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=utf-8"
    drop: bool = False


def serve(respond: Callable[[str, str, Any, bytes], Answer], tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A loopback server (not started: start the thread) that answers with ``respond``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            answer = respond(self.command, self.path, self.headers, self.rfile.read(length) if length else b"")
            if answer.drop:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            body = answer.body
            data = b"" if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    return httpd, threading.Thread(target=httpd.serve_forever, daemon=True)


__all__ = ["Answer", "serve"]
