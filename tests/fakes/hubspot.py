"""A small local HubSpot CRM API for the tests and the benchmarks.

It implements the endpoints the ``hubspot`` sink and source call, with the
behaviour HubSpot documents, and it *refuses* what the real API would
refuse, so a test fails when the sink sends something HubSpot would reject:

* auth: ``Authorization: Bearer TOKEN`` or 401 ``INVALID_AUTHENTICATION``
  (https://developers.hubspot.com/docs/api/private-apps);
* rate limits: ``max_requests`` per rolling ``window`` seconds (private apps:
  100 per 10 s) with the ``X-HubSpot-RateLimit-*`` headers and a 429 naming
  the policy; search endpoints 5 requests/s (policy ``SECONDLY``)
  (https://developers.hubspot.com/docs/api/usage-details#rate-limits);
* batch inputs at most 100, search ``limit`` at most 200 and at most 100
  values in an ``IN`` filter, a search reaches at most 10,000 results
  (https://developers.hubspot.com/docs/api/crm/search#limitations);
* properties: writing an unknown property is a 400 ``VALIDATION_ERROR``
  (``PROPERTY_DOESNT_EXIST``), an enumeration value outside its options
  ``INVALID_OPTION``, a text value over 65,536 characters is refused; a batch
  create with one invalid input fails whole
  (https://developers.hubspot.com/docs/api/crm/properties);
* contacts: email is unique (case-insensitive): creating a second is 409
  ``Contact already exists. Existing ID: N``; batch upsert by ``email`` or by
  a unique-value property creates or updates (``new`` says which)
  (https://developers.hubspot.com/docs/api/crm/contacts);
* notes: ``hs_timestamp`` is required; associations must name an existing
  contact (note -> contact default type 202)
  (https://developers.hubspot.com/docs/api/crm/notes);
* batch read/update of ids that do not exist: 207 with per-id errors.

Faults: ``after_apply(endpoint, n)`` runs once a request is applied and before
it is answered (a test kills the client there), ``drop_after_apply`` (``{"notes/batch/create": {2}}``: apply the 2nd
such request, then close the connection without an answer, so the client
cannot know the outcome), ``force_429`` (answer the next N requests 429).
``requests`` counts requests per endpoint.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any

from . import Answer, serve

MAX_TEXT = 65_536
CONTACT_PROPERTIES: dict[str, dict[str, Any]] = {
    name: {"type": "string"} for name in ("email", "firstname", "lastname", "company", "website", "twitterhandle", "hs_additional_emails", "lastmodifieddate", "createdate", "hs_object_id")
}
NOTE_PROPERTIES: dict[str, dict[str, Any]] = {name: {"type": "string"} for name in ("hs_timestamp", "hs_note_body", "hs_lastmodifieddate", "hs_createdate", "hs_object_id")}
READ_ONLY = {"lastmodifieddate", "createdate", "hs_object_id", "hs_lastmodifieddate", "hs_createdate"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _validation(message: str, errors: list[dict[str, Any]] | None = None) -> _Refused:
    return _Refused(400, {"status": "error", "message": message, "category": "VALIDATION_ERROR", "errors": errors or []})


class FakeHubSpot:
    """The fake API; ``url`` is its base URL (give it to the sink as ``base_url``)."""

    def __init__(self, token: str = "pat-test-token", *, max_requests: int = 100, window: float = 10.0, search_per_second: int = 5) -> None:
        self.token = token
        self.max_requests, self.window, self.search_per_second = max_requests, window, search_per_second
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.associations: set[tuple[str, str]] = set()  # (note id, contact id)
        self.archived: dict[str, set[str]] = {"contacts": set(), "notes": set()}  # ids deleted through batch/archive
        self.properties = {"contacts": dict(CONTACT_PROPERTIES), "notes": dict(NOTE_PROPERTIES)}
        self.requests: Counter[str] = Counter()
        self.drop_after_apply: dict[str, set[int]] = {}
        self.force_429 = 0
        self.refused_429 = 0
        self._indexes: dict[tuple[str, str], dict[str, list[str]]] = {}
        #: called as after_apply(endpoint, n) once a request is applied, before it is answered
        self.after_apply: Any = None
        self._ids = itertools.count(1001)
        self._recent: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._lock = threading.RLock()
        self.httpd, self._thread = serve(self._respond)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeHubSpot:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # dispatch ----------------------------------------------------------------
    def _respond(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return Answer(400, {"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"})
        status, payload, out, drop = self.handle(method, path, headers.get("Authorization"), body)
        return Answer(status, payload, out, drop=drop)

    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any, dict[str, str], bool]:
        route = path.split("?", 1)[0]
        with self._lock:
            if auth != f"Bearer {self.token}":
                return 401, {"status": "error", "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", "category": "INVALID_AUTHENTICATION"}, {}, False
            limited = self._rate_limit(route)
            if limited is not None:
                self.refused_429 += 1
                return limited.status, limited.body, limited.headers, False
            key = re.sub(r"^/crm/v[34]/(objects/|associations/|properties/)?", "", route)
            key = re.sub(r"/\d+$", "/{id}", key)
            self.requests[key] += 1
            headers = {"X-HubSpot-RateLimit-Max": str(self.max_requests), "X-HubSpot-RateLimit-Remaining": str(max(0, self.max_requests - len(self._recent))), "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000))}
            try:
                status, payload = self._route(method, route, body)
            except _Refused as exc:
                return exc.status, exc.body, {**headers, **exc.headers}, False
            drop = self.requests[key] in self.drop_after_apply.get(key, set())
            if self.after_apply is not None:
                self.after_apply(key, self.requests[key])
            return status, payload, headers, drop

    def _rate_limit(self, route: str) -> _Refused | None:
        now = time.monotonic()
        if self.force_429 > 0:
            self.force_429 -= 1
            return _Refused(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                            {"X-HubSpot-RateLimit-Max": str(self.max_requests), "X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)), "Retry-After": "0.2"})
        while self._recent and now - self._recent[0] > self.window:
            self._recent.popleft()
        if len(self._recent) >= self.max_requests:
            return _Refused(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                            {"X-HubSpot-RateLimit-Max": str(self.max_requests), "X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000))})
        if route.endswith("/search"):
            while self._searches and now - self._searches[0] > 1.0:
                self._searches.popleft()
            if len(self._searches) >= self.search_per_second:
                return _Refused(429, {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"})
            self._searches.append(now)
        self._recent.append(now)
        return None

    def _route(self, method: str, route: str, body: Any) -> tuple[int, Any]:
        m = re.fullmatch(r"/crm/v3/properties/(contacts|notes)(?:/([\w-]+))?", route)
        if m:
            return self._property(method, m.group(1), m.group(2), body)
        m = re.fullmatch(r"/crm/v3/objects/(contacts|notes)/(batch/create|batch/update|batch/upsert|batch/read|batch/archive|search)", route)
        if m and method == "POST":
            obj, op = m.groups()
            inputs = (body or {}).get("inputs")
            if op != "search":
                if not isinstance(inputs, list):
                    raise _validation("Invalid input JSON on line 1: inputs is required")
                if len(inputs) > 100:
                    raise _validation(f"Batch input size {len(inputs)} exceeds the limit of 100", [{"message": "inputs: size must be between 0 and 100"}])
            return getattr(self, f"_{op.replace('batch/', 'batch_')}")(obj, body)
        m = re.fullmatch(r"/crm/v4/associations/notes/contacts/batch/associate/default", route)
        if m and method == "POST":
            for inp in body["inputs"]:
                note, contact = str(inp["from"]["id"]), str(inp["to"]["id"])
                if note not in self.notes or contact not in self.contacts:
                    raise _validation(f"No note {note} or contact {contact}", [{"message": "OBJECT_NOT_FOUND"}])
                self.associations.add((note, contact))
            return 200, {"status": "COMPLETE", "results": [{"from": i["from"], "to": i["to"], "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}} for i in body["inputs"]]}
        m = re.fullmatch(r"/crm/v3/objects/contacts", route)
        if m and method == "GET":
            return 200, {"results": [self._public("contacts", i) for i in sorted(self.contacts, key=int)]}
        raise _Refused(404, {"status": "error", "message": f"Unable to route {method} {route}", "category": "OBJECT_NOT_FOUND"})

    # properties ---------------------------------------------------------------
    def _property(self, method: str, obj: str, name: str | None, body: Any) -> tuple[int, Any]:
        props = self.properties[obj]
        if method == "GET" and name:
            if name not in props:
                raise _Refused(404, {"status": "error", "message": f"Unable to find property {name}", "category": "OBJECT_NOT_FOUND"})
            return 200, {"name": name, **props[name]}
        if method == "POST" and not name:
            if body.get("name") in props:
                raise _Refused(409, {"status": "error", "message": f"A property named '{body['name']}' already exists.", "category": "CONFLICT"})
            for required in ("name", "label", "type", "fieldType", "groupName"):
                if not body.get(required):
                    raise _validation(f"{required} is required")
            props[body["name"]] = {k: body[k] for k in ("type", "fieldType", "hasUniqueValue", "options", "label") if k in body}
            return 201, {"name": body["name"], **props[body["name"]]}
        raise _Refused(405, {"status": "error", "message": "method not allowed"})

    def _check_properties(self, obj: str, properties: dict[str, Any], where: str) -> None:
        defs = self.properties[obj]
        errors = []
        for name, value in properties.items():
            if name not in defs:
                errors.append({"message": f'Property "{name}" does not exist', "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [name]}})
            elif name in READ_ONLY:
                errors.append({"message": f'"{name}" is a read only property; its value cannot be set.', "code": "READ_ONLY_VALUE", "context": {"propertyName": [name]}})
            elif value is not None and not isinstance(value, str):
                errors.append({"message": f'Property "{name}": values must be strings', "code": "INVALID_STRING", "context": {"propertyName": [name]}})
            elif value and len(value) > MAX_TEXT:
                errors.append({"message": f'Property "{name}" value is {len(value)} characters, over the limit of {MAX_TEXT}', "code": "INVALID_STRING", "context": {"propertyName": [name]}})
            elif defs[name].get("options") is not None and value not in {o["value"] for o in defs[name]["options"]} and value not in ("", None):
                errors.append({"message": f'{value} was not one of the allowed options: {[o["value"] for o in defs[name]["options"]]}', "code": "INVALID_OPTION", "context": {"propertyName": [name]}})
        if errors:
            raise _validation(f"Property values were not valid: {json.dumps(errors)} ({where})", errors)

    def _public(self, obj: str, oid: str) -> dict[str, Any]:
        rec = (self.contacts if obj == "contacts" else self.notes)[oid]
        return {"id": oid, "properties": dict(rec["properties"]), "createdAt": rec["createdAt"], "updatedAt": rec["updatedAt"], "archived": False}

    def _index(self, obj: str, prop: str) -> dict[str, list[str]]:
        """Object ids by a property's value (email folded); kept up to date by _new and _touch."""
        store = self.contacts if obj == "contacts" else self.notes
        index = self._indexes.get((obj, prop))
        if index is None or (not store and index):  # first use, or the test emptied the store
            index = {}
            for oid, rec in store.items():
                v = rec["properties"].get(prop)
                if v is not None:
                    index.setdefault(v.lower() if prop == "email" else v, []).append(oid)
            self._indexes[(obj, prop)] = index
        return index

    def _indexed(self, obj: str, oid: str) -> None:
        rec = (self.contacts if obj == "contacts" else self.notes)[oid]
        for (o, prop), index in self._indexes.items():
            v = rec["properties"].get(prop)
            if o == obj and v is not None:
                ids = index.setdefault(v.lower() if prop == "email" else v, [])
                if oid not in ids:
                    ids.append(oid)

    def _unique(self, obj: str, prop: str, value: str) -> str | None:
        store = self.contacts if obj == "contacts" else self.notes
        fold = prop == "email"
        for oid in self._index(obj, prop).get(value.lower() if fold else value, []):
            if oid not in store:
                continue  # emptied by a test since it was indexed
            v = store[oid]["properties"].get(prop)
            if v is not None and (v.lower() == value.lower() if fold else v == value):
                return oid
        return None

    def _new(self, obj: str, properties: dict[str, Any]) -> str:
        oid = str(next(self._ids))
        now = _now()
        props = {k: v for k, v in properties.items() if v is not None}
        props["hs_object_id"] = oid
        props["lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"] = now
        (self.contacts if obj == "contacts" else self.notes)[oid] = {"properties": props, "createdAt": now, "updatedAt": now}
        self._indexed(obj, oid)
        return oid

    def _touch(self, obj: str, oid: str, properties: dict[str, Any]) -> None:
        rec = (self.contacts if obj == "contacts" else self.notes)[oid]
        now = _now()
        rec["properties"].update({k: v for k, v in properties.items() if v is not None})
        rec["properties"]["lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"] = now
        rec["updatedAt"] = now
        self._indexed(obj, oid)

    # objects ------------------------------------------------------------------
    def _batch_create(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body["inputs"]
        for n, inp in enumerate(inputs):  # validated whole before anything is written
            props = inp.get("properties") or {}
            self._check_properties(obj, props, f"input {n}")
            if obj == "notes" and not props.get("hs_timestamp"):
                raise _validation("hs_timestamp is required for notes", [{"message": "Property hs_timestamp is required", "code": "REQUIRED"}])
            if obj == "contacts" and props.get("email"):
                existing = self._unique("contacts", "email", props["email"])
                if existing:
                    raise _Refused(409, {"status": "error", "message": f"Contact already exists. Existing ID: {existing}", "category": "CONFLICT"})
            for prop, d in self.properties[obj].items():
                if d.get("hasUniqueValue") and props.get(prop) and self._unique(obj, prop, props[prop]):
                    raise _Refused(409, {"status": "error", "message": f"A {obj[:-1]} with the unique value {props[prop]!r} for property {prop!r} already exists", "category": "CONFLICT"})
            for assoc in inp.get("associations") or []:
                to = str(assoc["to"]["id"])
                if to not in self.contacts:
                    raise _validation(f"input {n}: association to contact {to}, which does not exist", [{"message": "OBJECT_NOT_FOUND", "code": "INVALID_ASSOCIATION"}])
                if assoc["types"] != [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]:
                    raise _validation(f"input {n}: invalid association type {assoc['types']} for note to contact (202)")
        results = []
        for inp in inputs:
            oid = self._new(obj, inp.get("properties") or {})
            for assoc in inp.get("associations") or []:
                self.associations.add((oid, str(assoc["to"]["id"])))
            results.append(self._public(obj, oid))
        return 201, {"status": "COMPLETE", "results": results, "startedAt": _now(), "completedAt": _now()}

    def _batch_update(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self.contacts if obj == "contacts" else self.notes
        results, errors = [], []
        for n, inp in enumerate(body["inputs"]):
            self._check_properties(obj, inp.get("properties") or {}, f"input {n}")
        for inp in body["inputs"]:
            oid = str(inp["id"])
            if oid not in store:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "message": f"Could not get some {obj} objects, they may be deleted or not exist. Check that ids are valid.", "context": {"ids": [oid]}})
                continue
            self._touch(obj, oid, inp.get("properties") or {})
            results.append(self._public(obj, oid))
        if errors:
            return 207, {"status": "COMPLETE", "results": results, "numErrors": len(errors), "errors": errors}
        return 200, {"status": "COMPLETE", "results": results}

    def _batch_upsert(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        results = []
        for n, inp in enumerate(body["inputs"]):
            prop = inp.get("idProperty")
            if not prop or (prop != "email" and not self.properties[obj].get(prop, {}).get("hasUniqueValue")):
                raise _validation(f"input {n}: idProperty {prop!r} is not a unique-value property of {obj}")
            self._check_properties(obj, inp.get("properties") or {}, f"input {n}")
        for inp in body["inputs"]:
            prop, value = inp["idProperty"], str(inp["id"])
            oid = self._unique(obj, prop, value)
            props = {**(inp.get("properties") or {}), prop: value}
            if oid is None:
                oid = self._new(obj, props)
                results.append({**self._public(obj, oid), "new": True})
            else:
                self._touch(obj, oid, props)
                results.append({**self._public(obj, oid), "new": False})
        return 200, {"status": "COMPLETE", "results": results}

    def _batch_archive(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Archive (HubSpot's delete, restorable for 90 days in the UI): 204 No Content, also
        for ids that are already archived or never existed, as the API answers."""
        store = self.contacts if obj == "contacts" else self.notes
        for inp in body["inputs"]:
            if not isinstance(inp, dict) or "id" not in inp:
                raise _validation("Invalid input JSON: every input needs an id")
            oid = str(inp["id"])
            if store.pop(oid, None) is not None:
                self.archived[obj].add(oid)
                self.associations = {(n, c) for n, c in self.associations if oid not in (n, c)}
        return 204, None

    def _batch_read(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        prop = body.get("idProperty")
        store = self.contacts if obj == "contacts" else self.notes
        results, missing = [], []
        for inp in body["inputs"]:
            value = str(inp["id"])
            oid = self._unique(obj, prop, value) if prop else (value if value in store else None)
            if oid is None:
                missing.append(value)
            else:
                results.append(self._public(obj, oid))
        if missing:
            return 207, {"status": "COMPLETE", "results": results, "numErrors": 1, "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": f"Could not get some {obj} objects, they may be deleted or not exist.", "context": {"ids": missing}}]}
        return 200, {"status": "COMPLETE", "results": results}

    def _search(self, obj: str, body: dict[str, Any]) -> tuple[int, Any]:
        limit = int(body.get("limit") or 10)
        if limit > 200:
            raise _validation("limit: must be less than or equal to 200")
        after = int(body.get("after") or 0)
        if after + limit > 10_000:
            raise _validation("The search API returns at most 10,000 results: narrow the search")
        store = self.contacts if obj == "contacts" else self.notes
        groups = body.get("filterGroups") or [{"filters": []}]
        hits = []
        candidates: Any = store
        first = groups[0]["filters"][0] if len(groups) == 1 and groups[0].get("filters") else None
        if first is not None and first["operator"] == "IN" and first["propertyName"] != "email":
            index = self._index(obj, first["propertyName"])
            candidates = {oid for v in first["values"] for oid in index.get(v, []) if oid in store}
        for oid in sorted(candidates, key=int):
            props = store[oid]["properties"]
            if any(all(self._matches(props, f) for f in g.get("filters", [])) for g in groups):
                hits.append(oid)
        for sort in reversed(body.get("sorts") or []):
            name = sort["propertyName"] if isinstance(sort, dict) else sort
            hits.sort(key=lambda o: (store[o]["properties"].get(name) or "", int(o)), reverse=isinstance(sort, dict) and sort.get("direction") == "DESCENDING")
        page = hits[after:after + limit]
        out: dict[str, Any] = {"total": len(hits), "results": [self._public(obj, o) for o in page]}
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    @staticmethod
    def _matches(props: dict[str, Any], f: dict[str, Any]) -> bool:
        value, op = props.get(f["propertyName"]), f["operator"]
        if op == "IN":
            if len(f["values"]) > 100:
                raise _validation("IN filters take at most 100 values")
            return value in f["values"]
        if op == "EQ":
            return value == f["value"]
        if op == "GTE":
            return value is not None and value >= f["value"]
        if op == "GT":
            return value is not None and value > f["value"]
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        raise _validation(f"operator {op} is not supported here")


__all__ = ["FakeHubSpot"]
