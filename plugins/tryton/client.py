"""A small JSON-RPC client for a Tryton server (``POST /DATABASE/rpc/``).

Tryton's own client library (proteus) loads the whole model layer; a sync
needs five calls (search, search_read, read, create, delete), so this speaks
the wire protocol directly over urllib3, which crmsync already uses. Values
Tryton encodes as objects (``{"__class__": "datetime", ...}``) are decoded
here; errors come back as crmsync's: transport failures and 5xx as
:class:`crmsync.RetriableError`, a refused login as :class:`crmsync.ConfigError`,
a record the server refuses as :class:`TrytonUserError` (the sink turns that
into a rejection of that record).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from typing import Any

import crmsync


class TrytonUserError(crmsync.CrmsyncError):
    """The server refused the call's data (Tryton's ``UserError``/``UserWarning``)."""


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind == "datetime":
        return datetime(obj["year"], obj["month"], obj["day"], obj.get("hour", 0), obj.get("minute", 0), obj.get("second", 0), obj.get("microsecond", 0), tzinfo=UTC)
    if kind == "date":
        return date(obj["year"], obj["month"], obj["day"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    if kind == "Decimal":
        return float(obj["decimal"])
    return obj


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        v = value.astimezone(UTC) if value.tzinfo else value  # Tryton keeps naive UTC
        return {"__class__": "datetime", "year": v.year, "month": v.month, "day": v.day, "hour": v.hour, "minute": v.minute, "second": v.second, "microsecond": v.microsecond}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


class TrytonClient:
    """One session with a Tryton database, logged in on first use."""

    def __init__(self, url: str, database: str, username: str, password: str, *, timeout: float = 60.0, plugin: str | None = None) -> None:
        import urllib3

        self.endpoint = f"{url.rstrip('/')}/{database}/rpc/"
        self.database = database
        self.username = username
        self._password = password
        self.plugin = plugin
        self._auth: str | None = None
        self.requests = 0
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=min(10.0, timeout), read=timeout), retries=False, maxsize=2)

    def close(self) -> None:
        self._http.clear()

    def login(self) -> None:
        """Open a session (``common.db.login``); a refused password is a config error."""
        try:
            result = self._post("common.db.login", [self.username, {"password": self._password}, "en"], auth=False)
        except _Unauthorized as exc:
            msg = f"Tryton at {self.endpoint} refused the login of {self.username!r} (wrong user or password, or database {self.database!r} not served: start trytond with -d {self.database})"
            raise crmsync.ConfigError(msg, plugin=self.plugin) from exc
        user_id, session = result[0], result[1]
        self._auth = "Session " + base64.b64encode(f"{self.username}:{user_id}:{session}".encode()).decode()

    def call(self, method: str, params: list[Any]) -> Any:
        """Call ``method`` with ``params``; logs in (again, once) when the session is refused."""
        if self._auth is None:
            self.login()
        try:
            return self._post(method, params)
        except _Unauthorized:
            self.login()  # the session expired (the server restarted, a timeout)
            try:
                return self._post(method, params)
            except _Unauthorized as exc:
                msg = f"Tryton refused {method} for user {self.username!r}: give the user access to it (see the README's Tryton section)"
                raise crmsync.FatalError(msg, plugin=self.plugin) from exc

    def model(self, model: str, method: str, *args: Any) -> Any:
        """``model.MODEL.METHOD(*args, context)``."""
        return self.call(f"model.{model}.{method}", [*args, {}])

    def _post(self, method: str, params: list[Any], *, auth: bool = True) -> Any:
        import urllib3

        body = json.dumps({"id": 1, "method": method, "params": params}, default=_encode).encode()
        # accept gzip: trytond 8.2 labels a large answer gzip whether or not it compressed it
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip"}
        if auth and self._auth:
            headers["Authorization"] = self._auth
        self.requests += 1
        try:
            resp = self._http.request("POST", self.endpoint, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            # the call may have been applied before the connection dropped: writers search before creating
            msg = f"Tryton at {self.endpoint} did not answer {method}: {exc}"
            raise crmsync.RetriableError(msg, plugin=self.plugin) from exc
        if resp.status in (401, 403):
            raise _Unauthorized(method)
        if resp.status == 429 or resp.status >= 500:
            msg = f"Tryton answered {method} with HTTP {resp.status}"
            raise crmsync.RetriableError(msg, plugin=self.plugin, retry_after=_seconds(resp.headers.get("Retry-After")))
        if resp.status != 200:
            msg = f"Tryton answered {method} with HTTP {resp.status} at {self.endpoint} (is the URL right? it should be the server's root, e.g. http://host:8000)"
            raise crmsync.FatalError(msg, plugin=self.plugin)
        data = json.loads(resp.data, object_hook=_decode)
        if "error" in data and data["error"] is not None:
            raise _error(method, data["error"], self.plugin)
        return data.get("result")


class _Unauthorized(Exception):
    pass


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _error(method: str, error: Any, plugin: str | None) -> crmsync.CrmsyncError:
    """A JSON-RPC error as crmsync's error: the server's own words."""
    if isinstance(error, list) and error and error[0] in ("UserError", "UserWarning", "AccessError"):
        detail = error[1][0] if isinstance(error[1], list) and error[1] else str(error[1])
        if error[0] == "AccessError":
            return crmsync.FatalError(f"Tryton refused {method}: {detail} (the sync user lacks access rights)", plugin=plugin)
        return TrytonUserError(f"Tryton refused {method}: {detail}", plugin=plugin)
    if isinstance(error, list) and error and error[0] == "ConcurrencyException":
        return crmsync.RetriableError(f"Tryton: concurrent change during {method}", plugin=plugin)
    text = error[0] if isinstance(error, list) and error else str(error)
    return crmsync.FatalError(f"Tryton failed {method}: {text}", plugin=plugin)


def escape_like(value: str) -> str:
    """``value`` for an ``ilike`` pattern: its own ``%``, ``_`` and ``\\`` taken literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


__all__ = ["TrytonClient", "TrytonUserError", "escape_like"]
