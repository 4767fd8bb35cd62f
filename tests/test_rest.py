"""Issue 23: the REST helpers for plugin authors (crmsync.RestClient, auth, pagination,
replication keys, error mapping) against a local HTTP server, and a webhook sink built on
them that passes the conformance kit against crmsync.testing's recording receiver."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from werkzeug import Request, Response

import crmsync
from crmsync.testing import ReceiverPool, get_sink_test_class

from .crm_e2e import closed_port_url


def _client(httpserver, **kw: Any) -> crmsync.RestClient:
    return crmsync.RestClient(httpserver.url_for("/"), attempts=3, max_wait=0.05, **kw)


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_every_pagination_style_reads_every_record_once(httpserver, style):
    rows = [{"id": n} for n in range(7)]

    def handler(request: Request) -> Response:
        a = request.args
        if style == "page":
            page = int(a["page"])
            return Response(json.dumps({"data": rows[(page - 1) * 3 : page * 3]}), content_type="application/json")
        if style == "offset":
            off, lim = int(a["offset"]), int(a["limit"])
            return Response(json.dumps({"data": rows[off : off + lim]}), content_type="application/json")
        if style == "cursor":
            at = int(a.get("cursor", 0))
            return Response(json.dumps({"data": rows[at : at + 3], "meta": {"next": str(at + 3) if at + 3 < len(rows) else None}}), content_type="application/json")
        at = int(a.get("at", 0))
        headers = {"Link": f'<{httpserver.url_for("/items")}?at={at + 3}>; rel="next"'} if at + 3 < len(rows) else {}
        return Response(json.dumps({"data": rows[at : at + 3]}), content_type="application/json", headers=headers)

    httpserver.expect_request("/items").respond_with_handler(handler)
    paginator = {"page": crmsync.PageNumber(size_param="size", size=3), "offset": crmsync.Offset(limit=3), "cursor": crmsync.Cursor("meta.next"), "link": crmsync.LinkHeader()}[style]
    got = [r["id"] for r in _client(httpserver).paginate("/items", paginator=paginator, records="data")]
    assert got == list(range(7))


def test_auth_schemes_send_their_credentials(httpserver):
    seen: list[tuple[str | None, str | None]] = []

    def record(request: Request) -> Response:
        seen.append((request.headers.get("Authorization"), request.headers.get("X-Api-Key") or request.args.get("key")))
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/me").respond_with_handler(record)
    secret = crmsync.Secret("s3cr3t", "env:TOKEN")
    for auth in (crmsync.bearer(secret), crmsync.basic("ann", secret), crmsync.api_key("X-Api-Key", secret), crmsync.api_key("key", secret, where="query")):
        _client(httpserver, auth=auth).get("/me")
    assert seen == [("Bearer s3cr3t", None), ("Basic YW5uOnMzY3IzdA==", None), (None, "s3cr3t"), (None, "s3cr3t")]


def test_oauth2_client_credentials_fetches_a_token_and_renews_it_on_401(httpserver):
    tokens = iter(["t1", "t2"])
    httpserver.expect_request("/token", method="POST").respond_with_handler(lambda r: Response(json.dumps({"access_token": next(tokens), "expires_in": 3600}), content_type="application/json"))
    calls: list[str] = []

    def api(request: Request) -> Response:
        calls.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer t1" and len(calls) > 1:
            return Response("{}", status=401)  # revoked early
        return Response('{"ok": true}', content_type="application/json")

    httpserver.expect_request("/api").respond_with_handler(api)
    client = _client(httpserver, auth=crmsync.OAuth2ClientCredentials(httpserver.url_for("/token"), "id", crmsync.Secret("cs", "env:CS")))
    assert client.get("/api") == {"ok": True} and client.get("/api") == {"ok": True}
    assert calls == ["Bearer t1", "Bearer t1", "Bearer t2"]


def test_errors_map_to_what_the_runner_does_next(httpserver):
    answers = iter([Response("", status=429, headers={"Retry-After": "0"}), Response("", status=503), Response('{"ok": 1}', content_type="application/json")])
    httpserver.expect_request("/flaky").respond_with_handler(lambda r: next(answers))
    assert _client(httpserver).get("/flaky") == {"ok": 1}  # retried twice, then fine
    httpserver.expect_request("/missing").respond_with_json({"error": "no such thing"}, status=404)
    with pytest.raises(crmsync.FatalError, match="HTTP 404"):
        _client(httpserver).get("/missing")
    httpserver.expect_request("/secret").respond_with_json({}, status=403)
    with pytest.raises(crmsync.FatalError, match="credentials were refused"):
        _client(httpserver).get("/secret")
    with pytest.raises(crmsync.RetriableError, match="no answer"):
        crmsync.RestClient(closed_port_url(), attempts=1).get("/x")


def test_a_replication_key_bookmarks_the_newest_value():
    key = crmsync.ReplicationKey("updated_at", None)
    assert key.params("since") == {}
    for row in ({"updated_at": "2026-11-02"}, {"updated_at": "2026-11-05"}, {"updated_at": "2026-11-03"}):
        key.observe(row)
    again = crmsync.ReplicationKey("updated_at", key.state())
    assert again.params("since") == {"since": "2026-11-05"}


# a webhook sink on the helper, through the kit, against the recording receiver ---------------------------------
class WebhookSink(crmsync.Sink):
    name = "webhook"
    config_schema = {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"], "additionalProperties": False}

    def open(self) -> None:
        self.client = crmsync.RestClient(self.config["url"], attempts=2, max_wait=0.05, plugin=self.instance)

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        receipts = []
        for d in deliveries:
            body = {"interaction_id": d.interaction.interaction_id, "title": d.interaction.title, "version": d.version}
            self.client.send("POST", "/events", body, idempotency_key=f"{d.interaction.interaction_id}:{d.version}")
            receipts.append(d.receipt())
        return receipts

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> list[str]:
        for d in deletions:
            self.client.request("DELETE", f"/events/{d.interaction_id}")
        return [d.interaction_id for d in deletions]

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()


POOL = ReceiverPool()
#: the conformance kit's options for a sink posting to a receiver of the pool
RECEIVER_KIT = {
    "read_back": lambda options, tmp: POOL[tmp].read_back(),
    "unreachable_config": lambda tmp: {"url": closed_port_url()},
}
TestWebhookSink = get_sink_test_class(WebhookSink, lambda tmp: {"url": POOL[tmp].url}, **RECEIVER_KIT)


def test_the_receiver_makes_a_resend_with_the_same_idempotency_key_harmless(tmp_path):
    receiver = POOL[tmp_path]
    client = crmsync.RestClient(receiver.url)
    for _ in range(2):
        client.send("POST", "/events", {"interaction_id": "a", "title": "x"}, idempotency_key="a:1")
    receiver.fail(503)
    client.send("POST", "/events", {"interaction_id": "b", "title": "y"}, idempotency_key="b:1")  # retried past the failure
    assert sorted(r["interaction_id"] for r in receiver.read_back()) == ["a", "b"]
    assert [r["method"] for r in receiver.requests] == ["POST", "POST", "POST", "POST"]



class BatchingWebhookSink(WebhookSink):
    """Posts 3 deliveries a request; a failure partway keeps the receipts of what landed."""

    name = "batching_webhook"

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        by_id = {d.interaction.interaction_id: d for d in deliveries}
        bodies = [{"interaction_id": d.interaction.interaction_id, "title": d.interaction.title, "version": d.version} for d in deliveries]
        landed: list[crmsync.Receipt] = []
        try:
            for batch, _answer in self.client.send_batches("POST", "/events", bodies, size=3, key=lambda b: ",".join(f"{x['interaction_id']}:{x['version']}" for x in b)):
                landed += [by_id[x["interaction_id"]].receipt() for x in batch]
        except crmsync.RetriableError as exc:
            raise crmsync.RetriableError(str(exc), receipts=landed) from None
        return landed


TestBatchingWebhookSink = get_sink_test_class(BatchingWebhookSink, lambda tmp: {"url": POOL[tmp].url}, **RECEIVER_KIT)


def test_a_batch_that_fails_partway_keeps_what_landed(tmp_path):
    receiver = POOL[tmp_path / "partial"]
    client = crmsync.RestClient(receiver.url, attempts=1)
    items = [{"interaction_id": str(n)} for n in range(7)]
    receiver.fail(503, times=0)
    sent = []
    with pytest.raises(crmsync.RetriableError):
        for batch, _ in client.send_batches("POST", "/events", items, size=3):
            sent += batch
            if len(sent) == 3:
                receiver.fail(503)
    assert [x["interaction_id"] for x in sent] == ["0", "1", "2"] and sorted(r["interaction_id"] for r in receiver.read_back()) == ["0", "1", "2"]
