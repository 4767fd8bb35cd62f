"""HTTP(S) fetching for sources: conditional GET, retries, limits, clear errors.

Built on urllib3. Every request carries the stored ETag / Last-Modified (a 304
costs no parsing), accepts gzip/deflate, follows redirects (reporting
permanent ones), is bounded in time and size (the size cap counts decoded
bytes, so a gzip bomb stops early), and is retried with the core's tenacity
policy on 5xx, 429 (honouring Retry-After), timeouts and dropped connections.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..contract.errors import CrmsyncError, RetriableError
from .retry import retrying

USER_AGENT = "crmsync-rss/1 (+https://pypi.org/project/crmsync/)"


class FetchError(CrmsyncError):
    """A feed could not be fetched; ``str()`` says why in user terms. A
    :class:`~crmsync.CrmsyncError`: a plugin's ``except CrmsyncError`` sees it."""


@dataclass
class FetchResult:
    url: str
    status: int
    body: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    attempts: int = 1
    #: The response's Content-Type header (its ``charset`` says the body's encoding).
    content_type: str | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _blocked_address(host: str) -> str | None:
    """The private/loopback address ``host`` resolves to, if any."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return None  # the request itself will report the DNS failure
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
            return str(addr)
    return None


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


class Fetcher:
    """Fetches feeds concurrently-safe, with a per-host concurrency limit.

    urllib3 underneath (half the CPU time of httpx per request, which is what
    polling a thousand unchanged feeds costs); redirects are followed here, hop
    by hop, so each hop passes the private-address guard and permanent moves
    are reported.
    """

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        deadline: float | None = None,
        max_bytes: int = 50 * 1024 * 1024,
        per_host: int = 2,
        attempts: int = 4,
        max_wait: float = 30.0,
        block_private: bool = False,
        verify: bool | str = True,
        user_agent: str = USER_AGENT,
    ) -> None:
        import urllib3  # imported here: `crmsync --help` must stay fast

        self.max_bytes = max_bytes
        # a body trickled a few bytes at a time never trips the per-read timeout:
        # the whole response gets a deadline too
        self.deadline = deadline if deadline is not None else max(120.0, 6 * timeout)
        self.per_host = per_host
        self.attempts = attempts
        self.max_wait = max_wait
        self.block_private = block_private
        self._hosts: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()
        self.headers = {
            "User-Agent": user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.5",
            **urllib3.util.make_headers(accept_encoding=True),
        }
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        if isinstance(verify, str):
            tls["ca_certs"] = verify
        elif not verify:
            tls = {"cert_reqs": "CERT_NONE"}
        self.pool = urllib3.PoolManager(
            num_pools=200, maxsize=max(per_host, 1), block=False, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, **tls
        )

    def close(self) -> None:
        self.pool.clear()

    def _guard(self, url: str) -> None:
        # every hop, redirects included
        host = urlsplit(url).hostname or ""
        blocked = _blocked_address(host)
        if blocked:
            msg = f"refused to fetch {url}: {host} resolves to the private/loopback address {blocked} (block_private_addresses is on)"
            raise FetchError(msg)

    def _host_slot(self, url: str) -> threading.Semaphore:
        host = urlsplit(url).hostname or ""
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = threading.Semaphore(self.per_host)
            return self._hosts[host]

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """Fetch ``url`` (conditionally); raise :class:`FetchError` when it finally fails."""
        headers = dict(self.headers)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt_no = 0
        try:
            for attempt in retrying(attempts=self.attempts, initial=0.2, max_wait=self.max_wait, name=url):
                with attempt:
                    attempt_no += 1
                    with self._host_slot(url):
                        result = self._once(url, headers)
                    result.attempts = attempt_no
                    return result
        except RetriableError as exc:
            msg = f"{exc} (gave up after {attempt_no} attempts)"
            raise FetchError(msg) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, url: str, headers: dict[str, str]) -> FetchResult:
        from urllib3 import exceptions as ux

        target, moved, permanent = url, None, True
        try:
            for _hop in range(_MAX_REDIRECTS + 1):
                if urlsplit(target).scheme not in ("http", "https"):
                    msg = f"unsupported URL scheme in {target!r} (http and https only)"
                    raise FetchError(msg)
                if self.block_private:
                    self._guard(target)
                resp = self.pool.request("GET", target, headers=headers, redirect=False, preload_content=False, decode_content=True)
                try:
                    if resp.status in _REDIRECTS and resp.headers.get("location"):
                        resp.drain_conn()
                        permanent = permanent and resp.status in (301, 308)
                        target = urljoin(target, resp.headers["location"])
                        if permanent:
                            moved = target
                        continue
                    return self._result(url, target, resp, moved)
                except BaseException:
                    resp.close()  # a body left unread must not go back to the pool with its connection
                    raise
                finally:
                    resp.release_conn()
            msg = f"too many redirects (more than {_MAX_REDIRECTS}), last to {target}"
            raise FetchError(msg)
        except (FetchError, RetriableError):
            raise
        except ux.SSLError as exc:
            msg = f"TLS error: {exc}"
            raise FetchError(msg) from None
        except ux.NameResolutionError as exc:
            msg = f"DNS lookup failed for {urlsplit(target).hostname}: {exc}"
            raise FetchError(msg) from None
        # (NewConnectionError is a ConnectTimeoutError in urllib3 2: the order matters)
        except ux.NewConnectionError as exc:
            msg = f"connection failed: {str(exc).rsplit('new connection: ', 1)[-1]}"
            raise RetriableError(msg) from None
        except (ux.ConnectTimeoutError, ux.ReadTimeoutError, TimeoutError) as exc:
            msg = f"timed out ({type(exc).__name__})"
            raise RetriableError(msg) from None
        except (ux.ProtocolError, ux.DecodeError, ConnectionError) as exc:
            msg = f"connection dropped: {type(exc).__name__}: {exc}"
            raise RetriableError(msg) from None
        except (ux.HTTPError, ValueError) as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise FetchError(msg) from None

    def _result(self, url: str, final: str, resp: Any, moved: str | None) -> FetchResult:
        status = resp.status
        if status == 304:
            return FetchResult(url=url, status=304, etag=resp.headers.get("etag"), last_modified=resp.headers.get("last-modified"), moved_to=moved)
        reason = resp.reason or ""
        if status == 429 or status >= 500:
            msg = f"HTTP {status} {reason}".rstrip()
            raise RetriableError(msg, retry_after=_retry_after(resp.headers.get("retry-after")))
        if status == 410:
            msg = "HTTP 410 Gone: the feed was removed; take it out of the config"
            raise FetchError(msg)
        if status >= 400:
            msg = f"HTTP {status} {reason}".rstrip()
            raise FetchError(msg)
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes and "content-encoding" not in resp.headers:
            msg = f"response of {declared} bytes is over the {self.max_bytes} byte limit"
            raise FetchError(msg)
        chunks, size = [], 0
        ends = time.monotonic() + self.deadline
        while True:
            # read1: returns what one read brings, so the deadline is checked however slow the server
            chunk = resp.read1(64 * 1024, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                msg = f"response is over the {self.max_bytes} byte limit (after decompression)"
                raise FetchError(msg)
            chunks.append(chunk)
            if time.monotonic() > ends:
                msg = f"response not complete after {self.deadline:g} s ({size} bytes so far): the server sends too slowly"
                raise RetriableError(msg)
        return FetchResult(
            url=url,
            status=status,
            body=b"".join(chunks),
            etag=resp.headers.get("etag"),
            last_modified=resp.headers.get("last-modified"),
            moved_to=moved,
            content_type=resp.headers.get("content-type"),
        )
