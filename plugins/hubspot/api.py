"""HubSpot's CRM API through the official client (``hubspot-api-client``).

The client gives the endpoints, the auth header and the host setting (a
regional data centre, a proxy or the tests' local server). Responses are read
as the JSON HubSpot sent (``_preload_content=False``) so a refused record
keeps the API's own answer for the quarantine, and errors become crmsync's:

* the ``X-HubSpot-RateLimit-*`` headers pace the requests: when an answer says
  the window is used up, the next request waits for it to roll on;
* 429 (rate limits: 100 requests per 10 s for private apps, 5 searches/s) is
  retried through crmsync's tenacity policy, waiting what ``Retry-After`` or
  the ``X-HubSpot-RateLimit-*`` headers say: a 429 is never applied, so any
  request may be sent again;
* 5xx, timeouts and dropped connections are retried only for requests that
  are safe to repeat (reads, searches, upserts, updates). For a *create* the
  outcome is unknown: the error goes up as :class:`OutcomeUnknown` (a
  :class:`crmsync.RetriableError`) and the sink searches before it creates again;
* 401 is a :class:`crmsync.ConfigError` naming the token's reference, never its value;
* any other 4xx is :class:`ApiError` with the status and HubSpot's body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import crmsync

#: note -> contact, HubSpot's default association type
NOTE_TO_CONTACT = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}
BATCH_LIMIT = 100  # inputs per batch request
SEARCH_LIMIT = 200  # results per search page
SEARCH_IN_LIMIT = 100  # values per IN filter


class ApiError(crmsync.CrmsyncError):
    """HubSpot refused a request (4xx other than 401 and 429)."""

    def __init__(self, what: str, status: int, body: Any, **kwargs: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HubSpot refused {what}: HTTP {status}: {message or body}", **kwargs)
        self.status = status
        self.body = body

    @property
    def category(self) -> str | None:
        return self.body.get("category") if isinstance(self.body, dict) else None


class OutcomeUnknown(crmsync.RetriableError):
    """A write that may or may not have been applied (5xx, timeout, dropped connection)."""


def _json(raw: bytes | str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    h = {k.lower(): v for k, v in dict(headers).items()}
    if h.get("retry-after"):
        try:
            return float(h["retry-after"])
        except ValueError:
            pass
    if h.get("x-hubspot-ratelimit-remaining") == "0" and h.get("x-hubspot-ratelimit-interval-milliseconds"):
        return int(h["x-hubspot-ratelimit-interval-milliseconds"]) / 1000
    return None


class HubSpotApi:
    """The client, with crmsync's retry policy and error mapping around each call."""

    def __init__(self, token: crmsync.Secret, base_url: str, *, timeout: float, attempts: int, max_wait: float, plugin: str) -> None:
        from hubspot import HubSpot
        from urllib3.util import Retry

        # retries are ours (they know which requests may be repeated): none in urllib3
        self.client = HubSpot(access_token=token.get(), host=base_url.rstrip("/"), retry=Retry(total=0))
        self.token_ref = token.reference
        self.base_url = base_url
        self.timeout = timeout
        self.attempts, self.max_wait = attempts, max_wait
        self.plugin = plugin
        self.requests = 0

    def call(self, what: str, fn: Callable[..., Any], *args: Any, repeatable: bool = True, **kwargs: Any) -> tuple[int, Any]:
        """``fn(*args, **kwargs)``: returns (HTTP status, JSON body)."""

        def once() -> Any:
            try:
                return self._once(what, fn, args, kwargs, repeatable)
            except OutcomeUnknown as exc:
                return exc  # never repeated blindly: the sink searches before it creates again

        result = crmsync.retrying(attempts=self.attempts, max_wait=self.max_wait, name=f"{self.plugin}: {what}")(once)
        if isinstance(result, OutcomeUnknown):
            raise result
        return result

    def _once(self, what: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], repeatable: bool) -> tuple[int, Any]:
        import urllib3

        self.requests += 1
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            cls = crmsync.RetriableError if repeatable else OutcomeUnknown
            raise cls(f"HubSpot did not answer {what}: {exc}", plugin=self.plugin) from None
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status is None:
                raise
            body = _json(getattr(exc, "body", None))
            if status == 0:  # the client's wrapper of a TLS error
                raise crmsync.RetriableError(f"HubSpot did not answer {what}: {getattr(exc, 'reason', exc)}", plugin=self.plugin) from None
            if status == 401:
                msg = f"HubSpot refused the access token ({self.token_ref}) for {what}: HTTP 401 {body.get('message') if isinstance(body, dict) else ''}; check the private app's token and its scopes"
                raise crmsync.ConfigError(msg, plugin=self.plugin) from None
            if status == 429:
                policy = body.get("policyName") if isinstance(body, dict) else None
                raise crmsync.RetriableError(f"HubSpot rate limit ({policy or 'HTTP 429'}) on {what}", plugin=self.plugin, retry_after=_retry_after(getattr(exc, "headers", None))) from None
            if status >= 500:
                cls = crmsync.RetriableError if repeatable else OutcomeUnknown
                raise cls(f"HubSpot answered {what} with HTTP {status}", plugin=self.plugin) from None
            raise ApiError(what, status, body, plugin=self.plugin) from None
        self._pace(resp.headers)
        return resp.status, _json(resp.data)

    def _pace(self, headers: Any) -> None:
        """The last request used up the rate-limit window (``X-HubSpot-RateLimit-Remaining: 0``):
        wait for it to roll on instead of sending into a 429."""
        import time

        wait = _retry_after(headers)
        if wait:
            time.sleep(min(wait, self.max_wait))

    # the endpoints the plugin uses ---------------------------------------------
    def batch(self, obj: str, op: str, body: dict[str, Any], *, repeatable: bool = True) -> tuple[int, Any]:
        """``POST /crm/v3/objects/{obj}/batch/{op}``."""
        api = self.client.crm.contacts.batch_api if obj == "contacts" else self.client.crm.objects.notes.batch_api
        return self.call(f"{obj} batch/{op}", getattr(api, op), body, repeatable=repeatable)

    def search(self, obj: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{obj}/search``."""
        api = self.client.crm.contacts.search_api if obj == "contacts" else self.client.crm.objects.notes.search_api
        return self.call(f"{obj} search", api.do_search, body)[1]

    def associate_default(self, pairs: list[tuple[str, str]]) -> None:
        """Note -> contact default associations (idempotent)."""
        body = {"inputs": [{"from": {"id": n}, "to": {"id": c}} for n, c in pairs]}
        self.call("note associations", self.client.crm.associations.v4.batch_api.create_default, "notes", "contacts", body)

    def get_property(self, obj: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call(f"property {obj}.{name}", self.client.crm.properties.core_api.get_by_name, obj, name)[1]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_property(self, obj: str, definition: dict[str, Any]) -> None:
        self.call(f"create property {obj}.{definition['name']}", self.client.crm.properties.core_api.create, obj, definition, repeatable=False)


__all__ = ["BATCH_LIMIT", "NOTE_TO_CONTACT", "SEARCH_IN_LIMIT", "SEARCH_LIMIT", "ApiError", "HubSpotApi", "OutcomeUnknown"]
