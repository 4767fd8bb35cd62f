"""HTTP/JSON APIs for plugins: what singer-sdk gives a REST tap author, on crmsync's HTTP
stack (urllib3, the tenacity retry policy).

* :class:`RestClient`: requests with an auth scheme, JSON in and out, errors mapped to
  what the runner does next: 429 (honouring ``Retry-After``), 5xx, timeouts and dropped
  connections are :class:`~crmsync.RetriableError` (retried with backoff), other 4xx
  :class:`~crmsync.FatalError` (401/403 say to check the credentials);
* auth: :func:`bearer`, :func:`basic`, :func:`api_key`, :class:`OAuth2ClientCredentials`;
* pagination: :class:`PageNumber`, :class:`Offset`, :class:`Cursor`, :class:`LinkHeader`;
* :class:`ReplicationKey`: an incremental bookmark (the newest ``updated_at`` seen);
* for sinks: :meth:`RestClient.send` with an idempotency key.

A source::

    client = crmsync.RestClient("https://api.example", auth=crmsync.bearer(self.config["token"]))
    since = crmsync.ReplicationKey("updated_at", state)
    for row in client.paginate("/tickets", params=since.params("updated_since"), paginator=crmsync.Cursor("next"), records="items"):
        yield self.interaction(...)
        since.observe(row)
    yield crmsync.Checkpoint(since.state())
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

from ..contract.errors import FatalError, RetriableError
from .http import USER_AGENT, _retry_after
from .retry import retrying

Auth = Callable[[dict[str, str], dict[str, Any]], None]  # (headers, params) -> adds credentials


def _secret(value: Any) -> str:
    return value.get() if hasattr(value, "get") and not isinstance(value, (str, dict)) else str(value)


def bearer(token: Any) -> Auth:
    """``Authorization: Bearer TOKEN`` (``token`` may be a :class:`~crmsync.Secret`)."""

    def add(headers: dict[str, str], _params: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {_secret(token)}"

    return add


def basic(username: str, password: Any) -> Auth:
    """HTTP Basic authentication."""

    def add(headers: dict[str, str], _params: dict[str, Any]) -> None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{_secret(password)}".encode()).decode()

    return add


def api_key(name: str, value: Any, *, where: str = "header") -> Auth:
    """An API key in a header (``where="header"``) or a query parameter (``"query"``)."""

    def add(headers: dict[str, str], params: dict[str, Any]) -> None:
        (headers if where == "header" else params)[name] = _secret(value)

    return add


class OAuth2ClientCredentials:
    """OAuth 2.0 client credentials: a token fetched from ``token_url`` and renewed
    shortly before it expires (or when the API answers 401)."""

    def __init__(self, token_url: str, client_id: str, client_secret: Any, *, scope: str | None = None) -> None:
        self.token_url, self.client_id, self.client_secret, self.scope = token_url, client_id, client_secret, scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.client: RestClient | None = None

    def expire(self) -> None:
        self._token = None

    def __call__(self, headers: dict[str, str], _params: dict[str, Any]) -> None:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires - 30:
                form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": _secret(self.client_secret), **({"scope": self.scope} if self.scope else {})}
                assert self.client is not None  # set by the RestClient it is given to
                body = self.client.request("POST", self.token_url, form=form, authenticate=False)
                if not isinstance(body, dict) or "access_token" not in body:
                    msg = f"the token endpoint {self.token_url} answered without an access_token"
                    raise FatalError(msg)
                self._token = str(body["access_token"])
                self._expires = time.monotonic() + float(body.get("expires_in", 3600))
            headers["Authorization"] = f"Bearer {self._token}"


class RestClient:
    """JSON over HTTP(S) with auth, retries and error mapping (see the module doc)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        max_wait: float = 30.0,
        plugin: str | None = None,
        verify: bool | str = True,
    ) -> None:
        import urllib3

        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        if isinstance(auth, OAuth2ClientCredentials):
            auth.client = self
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self.attempts, self.max_wait, self.plugin = attempts, max_wait, plugin
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"} if verify is True else ({"cert_reqs": "CERT_REQUIRED", "ca_certs": verify} if isinstance(verify, str) else {"cert_reqs": "CERT_NONE"})
        self.pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, **tls)
        self.requests = 0

    def close(self) -> None:
        self.pool.clear()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base_url, path.lstrip("/"))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None, form: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, authenticate: bool = True, response_headers: dict[str, str] | None = None) -> Any:
        """One request, retried per the retry policy; returns the decoded JSON body (``None``
        when empty). ``response_headers``, if given, is filled with the answer's headers."""

        def once() -> Any:
            return self._once(method, path, dict(params or {}), json_body, form, dict(headers or {}), authenticate, response_headers)

        return retrying(attempts=self.attempts, max_wait=self.max_wait, name=f"{self.plugin or 'rest'} {method} {path}")(once)

    def _once(self, method: str, path: str, params: dict[str, Any], json_body: Any, form: Mapping[str, Any] | None, headers: dict[str, str], authenticate: bool,
              response_headers: dict[str, str] | None) -> Any:
        from urllib3 import exceptions as ux

        all_headers = {**self.headers, **headers}
        if authenticate and self.auth is not None:
            self.auth(all_headers, params)
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.requests += 1
        try:
            resp = self.pool.request(method, url, body=body, headers=all_headers, redirect=True)
        except (ux.ProtocolError, ux.TimeoutError, ux.NewConnectionError, ConnectionError) as exc:
            msg = f"{method} {url.split('?')[0]}: no answer ({type(exc).__name__})"
            raise RetriableError(msg, plugin=self.plugin) from None
        if response_headers is not None:
            response_headers.clear()
            response_headers.update({k.lower(): v for k, v in resp.headers.items()})
        data: Any = None
        if resp.data:
            try:
                data = json.loads(resp.data)
            except ValueError:
                data = resp.data.decode("utf-8", "replace")
        where = f"{method} {url.split('?')[0]}"
        if resp.status == 429 or resp.status >= 500:
            msg = f"{where}: HTTP {resp.status}"
            raise RetriableError(msg, plugin=self.plugin, retry_after=_retry_after(resp.headers.get("retry-after")))
        if resp.status == 401 and isinstance(self.auth, OAuth2ClientCredentials) and authenticate:
            self.auth.expire()  # a token revoked early: fetch a new one on the retry
            msg = f"{where}: HTTP 401, renewing the access token"
            raise RetriableError(msg, plugin=self.plugin)
        if resp.status in (401, 403):
            msg = f"{where}: HTTP {resp.status}: the credentials were refused; check the token or key and its permissions"
            raise FatalError(msg, plugin=self.plugin, status=resp.status, response=data)
        if resp.status >= 400:
            detail = data if isinstance(data, str) else json.dumps(data)[:500] if data is not None else ""
            msg = f"{where}: HTTP {resp.status} {detail}".rstrip()
            raise FatalError(msg, plugin=self.plugin, status=resp.status, response=data)
        return data

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def send(self, method: str, path: str, body: Any, *, idempotency_key: str | None = None) -> Any:
        """A write (POST/PUT/PATCH) with JSON ``body``; ``idempotency_key`` goes in the
        ``Idempotency-Key`` header, so a target that de-duplicates by it makes a resend
        after a crash harmless (``f"{interaction_id}:{version}"`` is a good key)."""
        return self.request(method, path, json_body=body, headers={"Idempotency-Key": idempotency_key} if idempotency_key else None)

    def send_batches(self, method: str, path: str, items: list[Any], *, size: int, key: Callable[[list[Any]], str] | None = None) -> Iterator[tuple[list[Any], Any]]:
        """``items`` sent ``size`` at a time (a JSON list per request), each request with
        the idempotency key ``key(batch)`` if given; yields ``(batch, answer)`` as each
        lands, so a sink returns receipts for what landed before a failure (pass them in
        ``RetriableError(receipts=...)``: the runner then retries only the rest)."""
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            yield batch, self.send(method, path, batch, idempotency_key=key(batch) if key else None)

    def paginate(self, path: str, *, paginator: Any, params: Mapping[str, Any] | None = None, records: str | None = None) -> Iterator[Any]:
        """Every record of every page: ``records`` names the list in each answer (dotted
        path; ``None``: the answer is the list); ``paginator`` says how to get the next page."""
        params = dict(params or {})
        url: str | None = path
        state = paginator.start(params)
        while url is not None:
            headers: dict[str, str] = {}
            body = self.request("GET", url, params=state, response_headers=headers)
            rows = _dig(body, records)
            if not isinstance(rows, list):
                msg = f"GET {path}: the answer holds no list at {records!r}"
                raise FatalError(msg, plugin=self.plugin)
            yield from rows
            url, state = paginator.next(url, state, body, rows, headers)


def _dig(body: Any, dotted: str | None) -> Any:
    if not dotted:
        return body
    for part in dotted.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


@dataclass
class PageNumber:
    """``?page=1``, ``?page=2``... until a page comes back short or empty."""

    param: str = "page"
    start_at: int = 1
    size_param: str | None = None
    size: int | None = None

    def start(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.param: self.start_at, **({self.size_param: self.size} if self.size_param and self.size else {})}

    def next(self, url: str, state: dict[str, Any], body: Any, rows: list[Any], headers: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
        if not rows or (self.size and len(rows) < self.size):
            return None, state
        return url, {**state, self.param: state[self.param] + 1}


@dataclass
class Offset:
    """``?offset=0&limit=100``, ``?offset=100&limit=100``... until a page comes back short."""

    param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100

    def start(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.param: 0, self.limit_param: self.limit}

    def next(self, url: str, state: dict[str, Any], body: Any, rows: list[Any], headers: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
        if len(rows) < self.limit:
            return None, state
        return url, {**state, self.param: state[self.param] + len(rows)}


@dataclass
class Cursor:
    """The next page's cursor is in the answer (``path``, dotted) and goes back as ``param``."""

    path: str = "next_cursor"
    param: str = "cursor"

    def start(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(params)

    def next(self, url: str, state: dict[str, Any], body: Any, rows: list[Any], headers: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
        cursor = _dig(body, self.path)
        if not cursor:
            return None, state
        return url, {**state, self.param: cursor}


@dataclass
class LinkHeader:
    """RFC 8288 ``Link: <...>; rel="next"`` (GitHub's style): the next page's URL whole."""

    def start(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(params)

    def next(self, url: str, state: dict[str, Any], body: Any, rows: list[Any], headers: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
        for part in headers.get("link", "").split(","):
            target, _, rest = part.partition(";")
            if 'rel="next"' in rest.replace(" ", "") or "rel=next" in rest.replace(" ", ""):
                return target.strip().strip("<>"), {}
        return None, state


class ReplicationKey:
    """An incremental bookmark: the greatest value of ``field`` seen (an ISO timestamp, an
    increasing id). ``params(name)`` asks the API for what came after it; ``observe(row)``
    after each record; ``state()`` for the :class:`~crmsync.Checkpoint`."""

    def __init__(self, field: str, state: Mapping[str, Any] | None = None) -> None:
        self.field = field
        self.value: Any = (state or {}).get("replication_key_value")

    def params(self, name: str) -> dict[str, Any]:
        return {name: self.value} if self.value is not None else {}

    def observe(self, row: Mapping[str, Any]) -> None:
        value = _dig(row, self.field)
        if value is not None and (self.value is None or value > self.value):
            self.value = value

    def state(self) -> dict[str, Any]:
        return {"replication_key": self.field, "replication_key_value": self.value}


__all__ = ["Auth", "Cursor", "LinkHeader", "OAuth2ClientCredentials", "Offset", "PageNumber", "ReplicationKey", "RestClient", "api_key", "basic", "bearer"]
