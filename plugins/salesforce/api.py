"""Salesforce's REST and Bulk 2.0 APIs through simple-salesforce, with crmsync's errors.

Logins (all with secrets as references): an access token with its instance
URL (``session_id``), username-password (with the security token), OAuth
client credentials (``consumer_key`` + ``consumer_secret``) or the JWT bearer
flow (``consumer_key`` + ``private_key`` + ``username``). ``domain`` is
``login``, ``test`` (a sandbox) or a My Domain host; ``api_version`` is the
REST version (default ``59.0``). A 401 ``INVALID_SESSION_ID`` logs in again
once (a session that expired mid-run); with a fixed ``session_id`` it is a
configuration error.

Errors: connection failures, timeouts and 5xx are :class:`crmsync.RetriableError`
(every write here is an upsert by an external id, so repeating one is
safe); 403 ``REQUEST_LIMIT_EXCEEDED`` (the org's daily API allowance) is a
:class:`crmsync.FatalError` (the backlog waits for the next run); other 4xx
are :class:`ApiError` with Salesforce's error list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import crmsync

DEFAULT_VERSION = "59.0"
COLLECTION_LIMIT = 200  # records per sObject Collections request


class ApiError(crmsync.CrmsyncError):
    """Salesforce refused a request (4xx)."""

    def __init__(self, what: str, status: int, content: Any, **kwargs: Any) -> None:
        first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else {}
        super().__init__(f"Salesforce refused {what}: HTTP {status} {first.get('errorCode', '')}: {first.get('message', content)}", **kwargs)
        self.status = status
        self.content = content
        self.code = first.get("errorCode")


AUTH_SCHEMA: dict[str, Any] = {
    "instance_url": {"type": "string", "description": "https://yourorg.my.salesforce.com (with session_id; the login flows find it themselves)."},
    "session_id": {"type": "string", "secret": True, "description": "An access token (env:NAME or file:PATH), used with instance_url."},
    "username": {"type": "string", "description": "The integration user (username-password and JWT flows)."},
    "password": {"type": "string", "secret": True, "description": "Username-password flow: the password (env:/file:)."},
    "security_token": {"type": "string", "secret": True, "description": "Username-password flow: the user's security token (env:/file:)."},
    "consumer_key": {"type": "string", "description": "Connected app's consumer key (client credentials and JWT flows)."},
    "consumer_secret": {"type": "string", "secret": True, "description": "Client credentials flow: the consumer secret (env:/file:)."},
    "private_key": {"type": "string", "secret": True, "description": "JWT bearer flow: the PEM private key (file:PATH or env:NAME)."},
    "domain": {"type": "string", "default": "login", "description": "login, test (a sandbox), or your My Domain (acme.my)."},
    "api_version": {"type": "string", "default": DEFAULT_VERSION, "pattern": r"^\d+\.\d$", "description": "REST API version."},
    "ca_file": {"type": "string", "description": "CA bundle to verify the server with (a private CA or a TLS-inspecting proxy)."},
    "timeout": {"type": "number", "default": 60, "description": "Seconds to wait for one request."},
    "retry_attempts": {"type": "integer", "minimum": 1, "default": 5, "description": "Attempts per request on 5xx, timeouts and dropped connections."},
    "crm": {"type": "string", "default": "salesforce", "description": "Name the record ids are kept under (Identity.crm_ids); the salesforce source, the crm_csv salesforce format and this sink share it."},
}


class SalesforceApi:
    """One logged-in simple-salesforce client, retried and mapped to crmsync's errors."""

    def __init__(self, plugin: crmsync.Sink | crmsync.Source) -> None:
        self.cfg = plugin.config
        self.plugin = plugin.instance
        self.resolve_path = plugin.resolve_path
        self.requests = 0
        self.sf = self._login()

    def _login(self) -> Any:
        import requests
        from simple_salesforce import Salesforce
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed

        cfg = self.cfg
        session = requests.Session()
        if cfg.get("ca_file"):
            session.verify = str(self.resolve_path(cfg["ca_file"]))
            session.trust_env = False  # else an environment REQUESTS_CA_BUNDLE overrides verify
        common = {"version": cfg["api_version"], "session": session, "domain": cfg["domain"]}
        secret = lambda key: cfg[key].get() if cfg.get(key) is not None else None  # noqa: E731
        try:
            if cfg.get("session_id"):
                if not cfg.get("instance_url"):
                    raise crmsync.ConfigError("session_id needs instance_url (https://yourorg.my.salesforce.com)", plugin=self.plugin)
                return Salesforce(instance_url=cfg["instance_url"], session_id=secret("session_id"), **common)
            if cfg.get("consumer_key") and cfg.get("private_key"):
                return Salesforce(username=cfg.get("username"), consumer_key=cfg["consumer_key"], privatekey=secret("private_key"), **common)
            if cfg.get("consumer_key") and cfg.get("consumer_secret"):
                return Salesforce(consumer_key=cfg["consumer_key"], consumer_secret=secret("consumer_secret"), **common)
            if cfg.get("username") and cfg.get("password"):
                return Salesforce(username=cfg["username"], password=secret("password"), security_token=secret("security_token") or "", **common)
        except SalesforceAuthenticationFailed as exc:
            msg = f"Salesforce login at {cfg['domain']} failed: {exc.code}: {exc.message}; check the credentials (references, never printed) and the domain"
            raise crmsync.ConfigError(msg, plugin=self.plugin) from None
        except requests.RequestException as exc:
            raise crmsync.RetriableError(f"Salesforce login did not answer: {exc}", plugin=self.plugin) from None
        msg = "no Salesforce credentials: give session_id + instance_url, username + password (+ security_token), consumer_key + consumer_secret, or consumer_key + private_key + username"
        raise crmsync.ConfigError(msg, plugin=self.plugin)

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with retries; a 401 logs in again once."""
        return crmsync.retrying(attempts=self.cfg["retry_attempts"], max_wait=60.0, name=f"{self.plugin}: {what}")(self._once, what, fn, args, kwargs, True)

    def _once(self, what: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], relogin: bool) -> Any:
        import requests
        from simple_salesforce.exceptions import SalesforceError

        self.requests += 1
        try:
            return fn(self.sf, *args, **kwargs)
        except requests.RequestException as exc:
            raise crmsync.RetriableError(f"Salesforce did not answer {what}: {exc}", plugin=self.plugin) from None
        except SalesforceError as exc:
            content = exc.content
            code = content[0].get("errorCode") if isinstance(content, list) and content and isinstance(content[0], dict) else None
            if exc.status == 401:
                if relogin and not self.cfg.get("session_id"):
                    self.sf = self._login()
                    return self._once(what, fn, args, kwargs, False)
                msg = f"Salesforce refused the session for {what} (401 {code or ''}): the access token expired or is wrong; give a fresh one, or a login flow that can renew it"
                raise crmsync.ConfigError(msg, plugin=self.plugin) from None
            if exc.status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                msg = f"Salesforce: the org's API request limit is used up ({what}); the backlog is delivered by a later run"
                raise crmsync.FatalError(msg, plugin=self.plugin) from None
            if exc.status >= 500:
                raise crmsync.RetriableError(f"Salesforce answered {what} with HTTP {exc.status}", plugin=self.plugin) from None
            raise ApiError(what, exc.status, content, plugin=self.plugin) from None

    # the calls the plugin uses -------------------------------------------------------
    def upsert_collection(self, sobject: str, field: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """sObject Collections upsert by ``field`` (at most 200, allOrNone false): one result per record."""
        body = {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in records]}
        return self.call(f"{sobject} upsert", lambda sf: sf.restful(f"composite/sobjects/{sobject}/{field}", method="PATCH", json=body, timeout=self.cfg["timeout"]))

    def delete_collection(self, ids: list[str]) -> list[dict[str, Any]]:
        """``DELETE composite/sobjects?ids=...`` (at most 200 ids), each deleted on its own."""
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        return self.call("delete", lambda sf: sf.restful("composite/sobjects", method="DELETE", params=params, timeout=self.cfg["timeout"]))

    def query_all(self, soql: str) -> list[dict[str, Any]]:
        return self.call("query", lambda sf: sf.query_all(soql, timeout=self.cfg["timeout"]))["records"]

    def describe(self, sobject: str) -> dict[str, Any]:
        return self.call(f"{sobject} describe", lambda sf: sf.restful(f"sobjects/{sobject}/describe", timeout=self.cfg["timeout"]))

    def bulk_upsert(self, sobject: str, field: str, records: list[dict[str, Any]], poll: float) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """A Bulk API 2.0 upsert job: (successful rows with sf__Id, failed rows with sf__Error)."""
        import csv
        import io

        def run(sf: Any) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
            api = getattr(sf.bulk2, sobject)
            ok: list[dict[str, str]] = []
            failed: list[dict[str, str]] = []
            for job in api.upsert(records=records, external_id_field=field, wait=poll):
                ok += csv.DictReader(io.StringIO(api.get_successful_records(job["job_id"])))
                if job["numberRecordsFailed"]:
                    failed += csv.DictReader(io.StringIO(api.get_failed_records(job["job_id"])))
            return ok, failed

        return self.call(f"{sobject} bulk upsert", run)


def soql_list(values: list[str]) -> str:
    """Values for a SOQL ``IN (...)``, quoted and escaped."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


__all__ = ["AUTH_SCHEMA", "COLLECTION_LIMIT", "ApiError", "SalesforceApi", "soql_list"]
