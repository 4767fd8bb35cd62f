"""A small local Salesforce REST API (over TLS) for the tests and the benchmarks.

simple-salesforce builds ``https://`` URLs, so this server speaks TLS with a
self-signed certificate made by ``openssl``; the sink is given it as
``ca_file``. It implements the calls the ``salesforce`` sink and source
make, with the behaviour Salesforce documents, and refuses what Salesforce
would refuse:

* auth: ``Authorization: Bearer SESSION`` or 401 ``INVALID_SESSION_ID``;
  ``force_403`` answers ``REQUEST_LIMIT_EXCEEDED`` (the org's daily API limit)
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm);
* sObject Collections upsert by external id (``PATCH
  composite/sobjects/TYPE/FIELD``): at most 200 records, each with
  ``attributes.type``; per record ``created`` true/false or errors:
  ``INVALID_FIELD`` (no such field), ``STRING_TOO_LONG``,
  ``REQUIRED_FIELD_MISSING``, ``INVALID_CROSS_REFERENCE_KEY`` (a ``WhoId``
  that is no Contact or Lead), ``DUPLICATE_VALUE``; ``allOrNone`` rolls back all
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm);
* describe (field names, lengths, ``externalId``), SOQL queries of the forms
  the plugin sends (``SELECT f, ... FROM T [WHERE f IN (...) | f >= datetime]
  [ORDER BY f, ...] [LIMIT n]``) with ``nextRecordsUrl`` paging;
* Bulk API 2.0 ingest jobs (create, upload CSV, ``UploadComplete``, job
  state, ``successfulResults`` with ``sf__Id``/``sf__Created``,
  ``failedResults`` with ``sf__Id``/``sf__Error``)
  (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm).

Faults: ``after_apply(kind, n)`` runs once a request is applied and before it
is answered (a test kills the client there), ``drop_after_apply`` (``{"collections": {1}}``: apply the 1st upsert,
then close the connection unanswered), ``force_403``, ``force_503``.
``requests`` counts requests per kind.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import ssl
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import Answer, serve
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = {"Task": "00T", "Contact": "003", "Lead": "00Q", "Account": "001"}
FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "Task": {
        "Id": {"type": "id"}, "Subject": {"length": 255}, "Description": {"length": 32000}, "ActivityDate": {"type": "date"},
        "Status": {"length": 40}, "Priority": {"length": 40}, "TaskSubtype": {"length": 40}, "WhoId": {"type": "reference"},
        "Crmsync_Id__c": {"length": 255, "externalId": True, "unique": True}, "LastModifiedDate": {"type": "datetime", "readonly": True},
    },
    "Contact": {
        "Id": {"type": "id"}, "FirstName": {"length": 40}, "LastName": {"length": 80, "required": True}, "Email": {"length": 80},
        "Crmsync_Id__c": {"length": 255, "externalId": True, "unique": True}, "LastModifiedDate": {"type": "datetime", "readonly": True},
        "Account.Name": {"readonly": True}, "Twitter__c": {"length": 80},
    },
    "Lead": {
        "Id": {"type": "id"}, "FirstName": {"length": 40}, "LastName": {"length": 80, "required": True}, "Email": {"length": 80},
        "Company": {"length": 255, "required": True}, "Website": {"length": 255}, "LeadSource": {"length": 40}, "Description": {"length": 32000},
        "Crmsync_Id__c": {"length": 255, "externalId": True, "unique": True}, "LastModifiedDate": {"type": "datetime", "readonly": True},
        "IsConverted": {"type": "boolean", "readonly": True},
    },
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl); returns (cert, key)."""
    cert, key = directory / "sf-cert.pem", directory / "sf-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


class _Refused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body


def _err(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


class FakeSalesforce:
    """The fake org; ``instance_url`` is its base (``https://127.0.0.1:PORT``), ``ca_file`` its certificate."""

    version = "59.0"

    def __init__(self, directory: Path, session_id: str = "00Dfake!session") -> None:
        self.session_id = session_id
        self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in FIELDS}
        self.deleted: set[str] = set()  # ids deleted through sObject Collections
        self.fields = json.loads(json.dumps(FIELDS))
        self.requests: Counter[str] = Counter()
        self.drop_after_apply: dict[str, set[int]] = {}
        self.force_403 = 0
        self.force_503 = 0
        #: called as after_apply(kind, n) once a request is applied, before it is answered
        self.after_apply: Any = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self._pages: dict[str, list[dict[str, Any]]] = {}
        self._index: dict[tuple[str, str], tuple[int, dict[Any, list[str]]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        cert, key = make_certificate(directory)
        self.ca_file = str(cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd, self._thread = serve(self._respond, tls=context)
        self.instance_url = f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeSalesforce:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # helpers for tests ---------------------------------------------------------
    def add(self, sobject: str, **values: Any) -> str:
        with self._lock:
            return self._insert(sobject, values)

    def _insert(self, sobject: str, values: dict[str, Any]) -> str:
        rid = f"{PREFIX[sobject]}{next(self._ids):015d}"
        self.records[sobject][rid] = {**values, "Id": rid, "LastModifiedDate": _now()}
        self._indexed(sobject, rid)
        return rid

    def _find(self, sobject: str, field: str, key: Any) -> list[str]:
        """Records whose external id ``field`` is ``key`` (an index kept by _insert/_set)."""
        store = self.records[sobject]
        index = self._index.get((sobject, field))
        if index is None or index[0] != id(store) or (not store and index[1]):
            index = (id(store), {})
            for rid, r in store.items():
                if r.get(field) is not None:
                    index[1].setdefault(r[field], []).append(rid)
            self._index[(sobject, field)] = index
        return [rid for rid in index[1].get(key, []) if store.get(rid, {}).get(field) == key]

    def _indexed(self, sobject: str, rid: str) -> None:
        rec = self.records[sobject][rid]
        for (t, field), (_ident, index) in self._index.items():
            if t == sobject and rec.get(field) is not None and rid not in index.setdefault(rec[field], []):
                index[rec[field]].append(rid)

    # dispatch ------------------------------------------------------------------
    def _respond(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        status, body, ctype, drop = self.handle(method, path, headers.get("Authorization"), raw, headers.get("Content-Type") or "")
        return Answer(status, body, content_type=ctype, drop=drop)

    def handle(self, method: str, path: str, auth: str | None, raw: bytes, ctype: str) -> tuple[int, Any, str, bool]:
        url = urlsplit(path)
        with self._lock:
            if auth != f"Bearer {self.session_id}":
                return 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], "application/json", False
            if self.force_403 > 0:
                self.force_403 -= 1
                return 403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], "application/json", False
            if self.force_503 > 0:
                self.force_503 -= 1
                return 503, [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}], "application/json", False
            m = re.fullmatch(r"/services/data/v(\d+\.\d)/(.*)", url.path)
            if not m:
                return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], "application/json", False
            rest = m.group(2)
            try:
                kind, status, body, out_type = self._route(method, rest, parse_qs(url.query), raw)
            except _Refused as exc:
                return exc.status, exc.body, "application/json", False
            self.requests[kind] += 1
            drop = self.requests[kind] in self.drop_after_apply.get(kind, set())
            if self.after_apply is not None:
                self.after_apply(kind, self.requests[kind])
            return status, body, out_type, drop

    def _route(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes) -> tuple[str, int, Any, str]:
        js = "application/json"
        m = re.fullmatch(r"sobjects/(\w+)/describe/?", rest)
        if m and method == "GET":
            t = self._type(m.group(1))
            return "describe", 200, {"name": t, "fields": [{"name": n, "type": d.get("type", "string"), "length": d.get("length", 0), "externalId": bool(d.get("externalId")), "nillable": not d.get("required"), "createable": not d.get("readonly")} for n, d in self.fields[t].items()]}, js
        m = re.fullmatch(r"composite/sobjects/(\w+)/(\w+)", rest)
        if m and method == "PATCH":
            return "collections", 200, self._upsert(self._type(m.group(1)), m.group(2), json.loads(raw)), js
        if rest.rstrip("/") == "composite/sobjects" and method == "DELETE":
            return "collections", 200, self._delete(query), js
        if rest.rstrip("/") == "query" and method == "GET":
            return "query", 200, self._query(query["q"][0]), js
        m = re.fullmatch(r"query/(\w+)-(\d+)", rest)
        if m and method == "GET":
            return "query", 200, self._page(m.group(1), int(m.group(2))), js
        if rest.rstrip("/") == "jobs/ingest" and method == "POST":
            return "bulk", 200, self._job(json.loads(raw)), js
        m = re.fullmatch(r"jobs/ingest/(\w+)(/batches|/successfulResults|/failedResults|/unprocessedrecords)?/?", rest)
        if m:
            return "bulk", *self._job_call(method, m.group(1), m.group(2), raw)
        raise _Refused(404, [{"message": f"Could not find a match for URL /{rest}", "errorCode": "NOT_FOUND"}])

    def _delete(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """sObject Collections delete: up to 200 ids, one result each; an id already deleted
        (or never there) fails alone with ENTITY_IS_DELETED unless allOrNone."""
        ids = [i for i in ",".join(query.get("ids", [""])).split(",") if i]
        if not ids:
            raise _Refused(400, [_err("INVALID_FIELD", "ids is required", [])])
        if len(ids) > 200:
            raise _Refused(400, [_err("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call", [])])
        out = []
        for rid in ids:
            holder = next((t for t, recs in self.records.items() if rid in recs), None)
            if holder is None:
                out.append({"id": rid, "success": False, "errors": [_err("ENTITY_IS_DELETED", "entity is deleted", [])]})
                continue
            del self.records[holder][rid]
            self.deleted.add(rid)
            out.append({"id": rid, "success": True, "errors": []})
        return out

    def _type(self, name: str) -> str:
        if name not in self.fields:
            raise _Refused(404, [{"message": f"The requested resource does not exist: sObject type '{name}' is not supported.", "errorCode": "NOT_FOUND"}])
        return name

    # writes --------------------------------------------------------------------
    def _check(self, sobject: str, rec: dict[str, Any], creating: bool) -> list[dict[str, Any]]:
        defs = self.fields[sobject]
        errors = []
        for name, value in rec.items():
            if name == "attributes":
                continue
            d = defs.get(name)
            if d is None or d.get("readonly") or d.get("type") == "id":
                errors.append(_err("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}" if d is None else f"Unable to create/update fields: {name}.", [name]))
                continue
            if isinstance(value, str) and d.get("length") and len(value) > d["length"]:
                errors.append(_err("STRING_TOO_LONG", f"{name}: data value too large: {value[:40]}... (max length={d['length']})", [name]))
            if d.get("type") == "reference" and value and not any(value in self.records[t] for t in ("Contact", "Lead")):
                errors.append(_err("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [name]))
        if creating:
            for name, d in defs.items():
                if d.get("required") and not rec.get(name):
                    errors.append(_err("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]))
        return errors

    def _upsert(self, sobject: str, field: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        records = body.get("records")
        if not isinstance(records, list):
            raise _Refused(400, [{"message": "records: expected an array", "errorCode": "JSON_PARSER_ERROR"}])
        if len(records) > 200:
            raise _Refused(400, [{"message": "EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than 200 records into this call", "errorCode": "EXCEEDED_ID_LIMIT"}])
        if not self.fields[sobject].get(field, {}).get("externalId"):
            raise _Refused(400, [{"message": f"Field {field} is not an external id field of {sobject}", "errorCode": "INVALID_FIELD"}])
        results = []
        plan = []
        for rec in records:
            if (rec.get("attributes") or {}).get("type") != sobject:
                raise _Refused(400, [{"message": "Each record needs attributes.type matching the URL's sObject", "errorCode": "INVALID_TYPE"}])
            key = rec.get(field)
            if not key:
                results.append({"success": False, "errors": [_err("MISSING_ARGUMENT", f"{field} not specified", [field])]})
                plan.append(None)
                continue
            matches = self._find(sobject, field, key)
            if len(matches) > 1:
                results.append({"success": False, "errors": [_err("DUPLICATE_EXTERNAL_ID", f"{field}: more than one record found for external id field: {matches}", [field])]})
                plan.append(None)
                continue
            errors = self._check(sobject, rec, creating=not matches)
            if errors:
                results.append({"success": False, "errors": errors})
                plan.append(None)
                continue
            results.append({"success": True, "created": not matches, "errors": []})
            plan.append((matches[0] if matches else None, rec))
        if body.get("allOrNone") and any(not r["success"] for r in results):
            return [r if not r["success"] else {"success": False, "errors": [_err("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header")]} for r in results]
        for res, p in zip(results, plan, strict=True):
            if p is None:
                continue
            rid, rec = p
            values = {k: v for k, v in rec.items() if k != "attributes"}
            if rid is None:
                rid = self._insert(sobject, values)
            else:
                self.records[sobject][rid].update(values)
                self.records[sobject][rid]["LastModifiedDate"] = _now()
                self._indexed(sobject, rid)
            res["id"] = rid
        return results

    # queries -------------------------------------------------------------------
    def _query(self, soql: str) -> dict[str, Any]:
        m = re.fullmatch(r"SELECT (.+?) FROM (\w+)(?: WHERE (.+?))?(?: ORDER BY (.+?))?(?: LIMIT (\d+))?", soql.strip(), re.IGNORECASE | re.DOTALL)
        if not m:
            raise _Refused(400, [{"message": f"unexpected token in: {soql[:80]}", "errorCode": "MALFORMED_QUERY"}])
        cols = [c.strip() for c in m.group(1).split(",")]
        sobject = self._type(m.group(2))
        for c in cols:
            if c not in self.fields[sobject]:
                raise _Refused(400, [{"message": f"No such column '{c}' on entity '{sobject}'", "errorCode": "INVALID_FIELD"}])
        rows = list(self.records[sobject].values())
        if m.group(3):
            keep = self._where(m.group(3))
            rows = [r for r in rows if keep(r)]
        for part in reversed([p.strip() for p in (m.group(4) or "").split(",") if p.strip()]):
            name = part.split()[0]
            rows.sort(key=lambda r: str(r.get(name) or ""), reverse=part.upper().endswith("DESC"))
        if m.group(5):
            rows = rows[: int(m.group(5))]
        out = [{"attributes": {"type": sobject, "url": f"/services/data/v{self.version}/sobjects/{sobject}/{r['Id']}"}, **{c: self._get(r, c) for c in cols}} for r in rows]
        token = f"01g{len(self._pages):012d}"
        self._pages[token] = out
        return self._page(token, 0)

    @staticmethod
    def _get(r: dict[str, Any], col: str) -> Any:
        if col == "Account.Name":
            return {"attributes": {"type": "Account"}, "Name": r["Account.Name"]} if r.get("Account.Name") else None
        return r.get(col)

    def _page(self, token: str, start: int, size: int = 2000) -> dict[str, Any]:
        rows = self._pages[token]
        chunk = rows[start:start + size]
        done = start + size >= len(rows)
        out: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": chunk}
        if not done:
            out["nextRecordsUrl"] = f"/services/data/v{self.version}/query/{token}-{start + size}"
        return out

    @staticmethod
    def _where(cond: str) -> Any:
        """The rows a WHERE condition keeps, as a predicate."""
        m = re.fullmatch(r"(\w+) IN \((.*)\)", cond.strip(), re.DOTALL)
        if m:
            if len(cond) > 100_000:
                raise _Refused(414, [{"message": "URI too long", "errorCode": "MALFORMED_QUERY"}])
            field = m.group(1)
            values = {unquote(v.strip().strip("'")).replace("\\'", "'") for v in m.group(2).split(",")}
            if field == "Email":
                folded = {v.lower() for v in values}
                return lambda r: str(r.get(field) or "").lower() in folded
            return lambda r: r.get(field) in values
        m = re.fullmatch(r"(\w+) >= (\S+)", cond.strip())
        if m:
            field, bound = m.group(1), _sf_time(m.group(2))
            return lambda r: _sf_time(r.get(field)) >= bound
        raise _Refused(400, [{"message": f"unsupported condition {cond!r} in this fake", "errorCode": "MALFORMED_QUERY"}])

    # bulk 2.0 ------------------------------------------------------------------
    def _job(self, body: dict[str, Any]) -> dict[str, Any]:
        sobject = self._type(body["object"])
        if body.get("operation") != "upsert" or not self.fields[sobject].get(body.get("externalIdFieldName", ""), {}).get("externalId"):
            raise _Refused(400, [{"message": "this fake takes upsert jobs by an external id field", "errorCode": "INVALIDJOB"}])
        jid = f"750{next(self._ids):015d}"
        self.jobs[jid] = {"id": jid, "object": sobject, "operation": "upsert", "externalIdFieldName": body["externalIdFieldName"], "state": "Open", "csv": "", "ok": [], "failed": [], "numberRecordsProcessed": 0, "numberRecordsFailed": 0, "contentType": "CSV", "lineEnding": body.get("lineEnding", "LF"), "columnDelimiter": body.get("columnDelimiter", "COMMA")}
        return {k: v for k, v in self.jobs[jid].items() if k not in ("csv", "ok", "failed")}

    def _job_call(self, method: str, jid: str, sub: str | None, raw: bytes) -> tuple[int, Any, str]:
        job = self.jobs.get(jid)
        if job is None:
            raise _Refused(404, [{"message": "job not found", "errorCode": "NOT_FOUND"}])
        public = {k: v for k, v in job.items() if k not in ("csv", "ok", "failed")}
        if sub == "/batches" and method == "PUT":
            if job["state"] != "Open":
                raise _Refused(400, [{"message": "job is not open", "errorCode": "INVALIDJOBSTATE"}])
            job["csv"] += raw.decode("utf-8")
            return 201, None, "application/json"
        if sub is None and method == "PATCH":
            state = json.loads(raw)["state"]
            if state == "UploadComplete":
                self._process(job)
            else:
                job["state"] = state
            return 200, {k: v for k, v in job.items() if k not in ("csv", "ok", "failed")}, "application/json"
        if sub is None and method == "GET":
            return 200, public, "application/json"
        if sub in ("/successfulResults", "/failedResults", "/unprocessedrecords") and method == "GET":
            rows = job["ok"] if sub == "/successfulResults" else job["failed"] if sub == "/failedResults" else []
            head = ["sf__Id", "sf__Created"] if sub == "/successfulResults" else ["sf__Id", "sf__Error"]
            buf = io.StringIO()
            cols = list(rows[0][1]) if rows else []
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(head + cols)
            for extra, rec in rows:
                w.writerow(extra + [rec[c] for c in cols])
            return 200, buf.getvalue(), "text/csv"
        raise _Refused(405, [{"message": "method not allowed", "errorCode": "METHOD_NOT_ALLOWED"}])

    def _process(self, job: dict[str, Any]) -> None:
        rows = list(csv.DictReader(io.StringIO(job["csv"])))
        sobject, field = job["object"], job["externalIdFieldName"]
        for row in rows:
            rec = {"attributes": {"type": sobject}, **{k: (v if v != "" else None) for k, v in row.items() if v != "#N/A"}}
            rec = {k: v for k, v in rec.items() if v is not None}
            (res,) = self._upsert(sobject, field, {"records": [rec]})
            if res["success"]:
                job["ok"].append(([res["id"], "true" if res["created"] else "false"], row))
            else:
                job["failed"].append((["", "; ".join(f"{e['statusCode']}:{e['message']}" for e in res["errors"])], row))
        job["numberRecordsProcessed"] = len(rows)
        job["numberRecordsFailed"] = len(job["failed"])
        job["state"] = "JobComplete"


def _sf_time(value: Any) -> str:
    """Salesforce datetimes (2026-01-01T00:00:00.000+0000 or ...Z) comparable as text."""
    s = str(value or "")
    return s.replace("Z", "+0000")[:19]


__all__ = ["FakeSalesforce", "make_certificate"]
