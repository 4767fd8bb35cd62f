"""A loopback HTTP/1.1 feed server with ETag/304 and injectable faults, for the tests
and the benchmarks (``bench/`` imports it): one implementation of the fault cases."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FeedServer:
    """Serves files over HTTP/1.1 with ETag/304. ``faults(path, attempt)`` picks what
    the request gets: None (the file), or "500", "429", "reset", "truncated" (EOF before
    Content-Length), "cut" (no Content-Length, the connection closed halfway: only the
    document can tell), "slow", "trickle" (100 bytes every 0.2 s). ``content_types``
    overrides the Content-Type per path."""

    def __init__(self, files: dict[str, bytes], faults: Any = None, content_types: dict[str, str] | None = None) -> None:
        self.files, self.faults = files, faults or (lambda path, attempt: None)
        self.content_types = content_types or {}
        self.attempts: dict[str, int] = {}
        self.log: list[tuple[str, int, str | None]] = []
        self._etags: dict[str, str] = {}
        self._mutex = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY, as production servers set it (nginx: tcp_nodelay on). Without
            # it a response written in parts waits for the client's delayed ACK, about
            # 40 ms a request: the 304 benchmark measured that stall, not the client
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                with outer._mutex:
                    n = outer.attempts[self.path] = outer.attempts.get(self.path, 0) + 1
                fault = outer.faults(self.path, n)
                outer.log.append((self.path, n, fault))
                body = outer.files.get(self.path)
                if body is None:
                    return self._plain(404, b"")
                if fault == "500":
                    return self._plain(500, b"boom")
                if fault == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "reset":
                    # linger 0, then really close (rfile/wfile hold the socket open): the peer gets an RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self._hang_up()
                    return
                etag = outer.etag(self.path, body)
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", outer.content_types.get(self.path, "application/xml"))
                if fault == "cut":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self._hang_up()
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "trickle":
                    for i in range(0, len(body), 100):
                        try:
                            self.wfile.write(body[i : i + 100])
                            self.wfile.flush()
                        except OSError:
                            return  # the client gave up
                        time.sleep(0.2)
                    return
                if fault == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # EOF before Content-Length is reached
                    self._hang_up()
                    return
                if fault == "slow":
                    for i in range(0, len(body), max(1, len(body) // 4)):
                        self.wfile.write(body[i : i + max(1, len(body) // 4)])
                        self.wfile.flush()
                        time.sleep(0.3)
                    return
                self.wfile.write(body)

            def _hang_up(self) -> None:
                self.close_connection = True
                for f in (self.rfile, self.wfile):
                    with contextlib.suppress(OSError):
                        f.close()
                self.connection.close()
                self.wfile = io.BytesIO()  # what the base class still flushes

            def _plain(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def etag(self, path: str, body: bytes) -> str:
        if path not in self._etags:
            self._etags[path] = '"' + hashlib.sha1(body).hexdigest() + '"'
        return self._etags[path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["FeedServer"]
