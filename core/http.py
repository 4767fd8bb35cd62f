"""HTTP(S) fetching for sources: conditional GET, retries, limits, clear errors.

Built on httpx. Every request carries the stored ETag / Last-Modified (a 304
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
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

from .errors import RetriableError
from .retry import retrying

USER_AGENT = "crmsync-rss/1 (+https://pypi.org/project/crmsync/)"


class FetchError(Exception):
    """A feed could not be fetched; ``str()`` says why in user terms."""


@dataclass
class FetchResult:
    url: str
    status: int
    body: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    attempts: int = 1


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
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
            return str(addr)
    return None


class Fetcher:
    """Fetches feeds concurrently-safe, with a per-host concurrency limit."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        max_bytes: int = 50 * 1024 * 1024,
        per_host: int = 2,
        attempts: int = 4,
        max_wait: float = 30.0,
        block_private: bool = False,
        verify: bool | str = True,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.max_bytes = max_bytes
        self.per_host = per_host
        self.attempts = attempts
        self.max_wait = max_wait
        self.block_private = block_private
        self._hosts: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()
        import httpx  # imported here: `crmsync --help` must stay fast

        hooks = {"request": [self._guard]} if block_private else {}
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=5,
            verify=verify,
            headers={"User-Agent": user_agent, "Accept": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.5"},
            event_hooks=hooks,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    def close(self) -> None:
        self.client.close()

    def _guard(self, request: "httpx.Request") -> None:
        # runs for every request, redirects included
        blocked = _blocked_address(request.url.host)
        if blocked:
            msg = f"refused to fetch {request.url}: {request.url.host} resolves to the private/loopback address {blocked} (block_private_addresses is on)"
            raise FetchError(msg)

    def _host_slot(self, url: str) -> threading.Semaphore:
        host = urlsplit(url).hostname or ""
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = threading.Semaphore(self.per_host)
            return self._hosts[host]

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """Fetch ``url`` (conditionally); raise :class:`FetchError` when it finally fails."""
        headers = {}
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
        import httpx

        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 304:
                    return FetchResult(url=url, status=304, etag=resp.headers.get("etag"), last_modified=resp.headers.get("last-modified"), moved_to=_moved(resp))
                if resp.status_code == 429 or resp.status_code >= 500:
                    msg = f"HTTP {resp.status_code} {resp.reason_phrase}"
                    raise RetriableError(msg, retry_after=_retry_after(resp.headers.get("retry-after")))
                if resp.status_code == 410:
                    msg = "HTTP 410 Gone: the feed was removed; take it out of the config"
                    raise FetchError(msg)
                if resp.status_code >= 400:
                    msg = f"HTTP {resp.status_code} {resp.reason_phrase}"
                    raise FetchError(msg)
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes and "content-encoding" not in resp.headers:
                    msg = f"response of {declared} bytes is over the {self.max_bytes} byte limit"
                    raise FetchError(msg)
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        msg = f"response is over the {self.max_bytes} byte limit (after decompression)"
                        raise FetchError(msg)
                    chunks.append(chunk)
                return FetchResult(
                    url=url, status=resp.status_code, body=b"".join(chunks), etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"), moved_to=_moved(resp),
                )
        except FetchError:
            raise
        except httpx.TimeoutException as exc:
            msg = f"timed out ({type(exc).__name__})"
            raise RetriableError(msg) from None
        except httpx.ConnectError as exc:
            text = str(exc)
            if "CERTIFICATE" in text.upper() or "SSL" in text.upper() or "TLS" in text.upper():
                msg = f"TLS error: {text}"
                raise FetchError(msg) from None
            if "name or service not known" in text.lower() or "nodename nor servname" in text.lower() or "name resolution" in text.lower() or "getaddrinfo" in text.lower():
                msg = f"DNS lookup failed for {urlsplit(url).hostname}: {text}"
                raise FetchError(msg) from None
            msg = f"connection failed: {text}"
            raise RetriableError(msg) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            msg = f"connection dropped: {type(exc).__name__}: {exc}"
            raise RetriableError(msg) from None
        except httpx.TooManyRedirects as exc:
            msg = f"too many redirects: {exc}"
            raise FetchError(msg) from None
        except httpx.HTTPError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise FetchError(msg) from None


def _moved(resp: "httpx.Response") -> str | None:
    """The new URL when the first redirect hops were permanent (301/308)."""
    moved = None
    for hop in resp.history:
        if hop.status_code not in (301, 308):
            break
        moved = str(hop.url.join(hop.headers.get("location", "")))
    return moved
