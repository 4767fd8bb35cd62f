"""The hubspot sink and source against a local server that enforces HubSpot's documented
behaviour (tests/fakes/hubspot.py): batches, rate limits, refusals, lost answers, kills."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from crmsync.testing import get_sink_test_class, get_source_test_class
from crmsync_hubspot import HubSpotContactsSource, HubSpotSink

from .conftest import crmsync_cmd
from .crm_e2e import PerTest, closed_port_url, demo_copy, export, finish, forget_json, kill_while_applied, quarantined, run_json
from .fakes.hubspot import FakeHubSpot

TOKEN_ENV = "CRMSYNC_TEST_HUBSPOT_TOKEN"
TOKEN = "pat-na1-0123456789abcdef"
os.environ[TOKEN_ENV] = TOKEN
ID_PROP = "crmsync_interaction_id"

def _start(directory: Path, **kwargs) -> FakeHubSpot:
    fake = FakeHubSpot(TOKEN, **kwargs).__enter__()
    fake.properties["notes"][ID_PROP] = {"type": "string", "fieldType": "text"}
    return fake


_fake = PerTest(_start, lambda fake: fake.__exit__())


@pytest.fixture(autouse=True)
def _stop_fakes():
    yield
    _fake.stop_all()


@pytest.fixture
def hubspot(tmp_path: Path) -> FakeHubSpot:
    return _fake(tmp_path)


def options(fake: FakeHubSpot) -> dict:
    return {"access_token": f"env:{TOKEN_ENV}", "base_url": fake.url}


def held(fake: FakeHubSpot) -> dict[str, dict]:
    """Notes by interaction id (fails on a duplicate), with their contacts."""
    out: dict[str, dict] = {}
    for nid, rec in fake.notes.items():
        iid = rec["properties"][ID_PROP]
        assert iid not in out, f"interaction {iid} is in HubSpot twice"
        body = html.unescape(rec["properties"]["hs_note_body"].replace("<br>", "\n"))
        out[iid] = {"note": nid, "title": body.split("\n", 1)[0], "body": body, "contacts": sorted(c for n, c in fake.associations if n == nid), "properties": rec["properties"]}
    return out


TestHubSpotSink = get_sink_test_class(
    HubSpotSink,
    lambda tmp: {**options(_fake(tmp)), "search_lag": 0},
    read_back=lambda opts, tmp: [{"interaction_id": i, "title": n["title"]} for i, n in held(_fake[tmp]).items()],
    unreachable_config=lambda tmp: {"access_token": f"env:{TOKEN_ENV}", "base_url": closed_port_url(), "retry_attempts": 1},
)


def _seeded(tmp: Path) -> dict:
    fake = _fake(tmp)
    if not fake.contacts:
        for email, first, last in [("ann@example.org", "Ann", "Example"), ("bob@example.org", "Bob", "Example"), ("carol@example.org", "Carol", "Example")]:
            fake._new("contacts", {"email": email, "firstname": first, "lastname": last})
    return options(fake)


TestHubSpotSource = get_source_test_class(HubSpotContactsSource, _seeded, min_records=3)


# end to end --------------------------------------------------------------------------------
def _demo(tmp: Path, fake: FakeHubSpot, sink_extra: str = "", posts: int = 0) -> Path:
    """The demo with HubSpot as its CRM: contacts read from it, interactions written to it."""
    target = demo_copy(tmp, posts)
    cfg = (target / "crmsync.toml").read_text()
    cfg = cfg.replace(
        '[sources.crm_contacts]\nplugin = "crm_csv"\nfile = "crm/contacts.csv"\ncrm = "generic"',
        f'[sources.crm_contacts]\nplugin = "hubspot"\naccess_token = "env:{TOKEN_ENV}"\nbase_url = "{fake.url}"',
    )
    cfg = cfg.replace(
        '[sinks.crm_import]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"',
        f"[sinks.hubspot]\nplugin = \"hubspot\"\naccess_token = \"env:{TOKEN_ENV}\"\nbase_url = \"{fake.url}\"\nsearch_lag = 0\n{sink_extra}",
    )
    (target / "crmsync.toml").write_text(cfg)
    return target / "crmsync.toml"


def _seed_demo_contacts(fake: FakeHubSpot) -> dict[str, str]:
    return {
        "tom": fake._new("contacts", {"email": "Tom.Baker@example.org", "firstname": "Tom", "lastname": "Baker"}),
        "camille": fake._new("contacts", {"email": "camille@durand.example", "firstname": "Camille", "lastname": "Durand"}),
    }


def _check_exactly_once(fake: FakeHubSpot, cfg: Path) -> dict[str, dict]:
    notes = held(fake)
    stored = export(cfg)
    assert set(notes) == set(stored)
    emails = [c["properties"].get("email", "").lower() for c in fake.contacts.values() if c["properties"].get("email")]
    assert len(emails) == len(set(emails)), "a contact was created twice"
    contact_email = {cid: c["properties"].get("email", "").lower() for cid, c in fake.contacts.items()}
    for iid, note in notes.items():  # on the right contact: the author's email, or none for authors without one
        author_emails = {e.lower() for e in ((stored[iid]["author"] or {}).get("emails") or [])}
        assert [contact_email[c] in author_emails for c in note["contacts"]] == ([True] if author_emails else []), (stored[iid]["author"], note["contacts"])
    return notes


@pytest.mark.slow
def test_demo_lands_in_hubspot_once_on_the_matched_contacts(tmp_path, hubspot):
    seeded = _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot)
    code, report = run_json(cfg)
    assert code == 0, report
    notes = _check_exactly_once(hubspot, cfg)
    assert len(notes) == 12 and report["sinks"][0]["delivered"] == 12
    stored = export(cfg)
    toms = [i for i, r in stored.items() if r["author"] and "tom.baker@example.org" in [e.lower() for e in r["author"]["emails"]]]
    assert toms and all(notes[i]["contacts"] == [seeded["tom"]] for i in toms), "a linked author's notes go to the CRM contact"
    assert all(stored[i]["author"]["crm_ids"].get("hubspot") == seeded["tom"] for i in toms)
    # a re-run sends nothing (after the contacts the sink created are read back and linked)
    run_json(cfg)
    before = dict(hubspot.requests)
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["delivered"] == 0
    writes = {k: hubspot.requests[k] - before.get(k, 0) for k in hubspot.requests if "batch" in k}
    assert not any(writes.values()), writes
    assert held(hubspot) == notes


@pytest.mark.slow
def test_batches_are_full_and_rate_limits_are_honoured(tmp_path):
    fake = _fake(tmp_path, max_requests=8, window=1.0)
    cfg = _demo(tmp_path, fake, posts=240)
    fake.force_429 = 2
    code, report = run_json(cfg)
    assert code == 0, report
    notes = _check_exactly_once(fake, cfg)
    n = len(notes)
    assert n == 252
    assert fake.requests["notes/batch/create"] == -(-n // 100), dict(fake.requests)
    assert fake.requests["contacts/batch/upsert"] <= -(-n // 100)
    # the two forced 429s, and none of its own making: the rate-limit headers paced the sink
    assert fake.refused_429 == 2


@pytest.mark.slow
@pytest.mark.parametrize("search", ["always", "unknown"])
def test_a_lost_answer_to_a_create_is_searched_not_created_again(tmp_path, hubspot, search):
    hubspot.drop_after_apply = {"notes/batch/create": {1}}
    cfg = _demo(tmp_path, hubspot, sink_extra=f'search_before_create = "{search}"')
    code, report = run_json(cfg)
    assert code == 0, report
    _check_exactly_once(hubspot, cfg)
    assert hubspot.requests["notes/search"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("failpoints", ["sink.after_write:1", "sink.after_write:2", "sink.after_ledger:1"])
def test_a_kill_in_the_sink_phase_loses_and_duplicates_nothing(tmp_path, hubspot, failpoints):
    _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot, sink_extra="batch_size = 4", posts=30)
    code, _ = run_json(cfg, failpoints=failpoints)
    assert code == -9
    finish(cfg)
    _check_exactly_once(hubspot, cfg)


@pytest.mark.slow
def test_a_refused_property_quarantines_that_row_and_the_rest_lands(tmp_path, hubspot):
    hubspot.properties["notes"]["crmsync_sentiment"] = {"type": "enumeration", "fieldType": "select", "options": [{"value": "positive"}, {"value": "neutral"}, {"value": "mixed"}]}
    cfg = _demo(tmp_path, hubspot, sink_extra='note_properties = { crmsync_sentiment = "sentiment_label" }')
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    stored = export(cfg)
    negative = {i for i, r in stored.items() if (r.get("sentiment") or {}).get("label") == "negative"}
    assert negative and code == 1
    assert sink["rejected"] == len(negative) and sink["delivered"] == 12 - len(negative)
    assert set(held(hubspot)) == set(stored) - negative
    listed = quarantined(cfg, "sink:hubspot")
    assert {i["ref"] for i in listed} == negative and all("INVALID_OPTION" in i["reason"] or "allowed options" in i["reason"] for i in listed)
    raw = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "quarantine", "show", str(listed[0]["id"]), "--raw"], capture_output=True, text=True, check=True).stdout
    detail = json.loads(raw)
    assert detail["response"]["status"] == 400 and TOKEN not in raw
    # HubSpot gains the option: the next run delivers them, the entries close
    hubspot.properties["notes"]["crmsync_sentiment"]["options"].append({"value": "negative"})
    code, report = run_json(cfg)
    assert code == 0 and report["sinks"][0]["delivered"] >= len(negative)
    _check_exactly_once(hubspot, cfg)


@pytest.mark.slow
def test_long_text_is_cut_with_a_marker_not_refused(tmp_path, hubspot):
    cfg = _demo(tmp_path, hubspot)
    long_item = f"<item><title>A very long post</title><link>https://long.example/1</link><guid>https://long.example/1</guid><description>{'word ' * 20000}</description></item>"
    feed = cfg.parent / "feeds" / "long.rss.xml"
    feed.write_text(f'<rss version="2.0"><channel><title>Long</title><link>https://long.example/</link>{long_item}</channel></rss>')
    code, report = run_json(cfg)
    assert code == 0, report
    (note,) = [n for n in held(hubspot).values() if n["title"] == "A very long post"]
    assert len(note["properties"]["hs_note_body"]) <= 65536 and "…[truncated]" in note["body"] and "Link: https://long.example/1" in note["body"]
    assert any("truncated" in n for n in report["sinks"][0]["notes"])


def test_a_bad_token_fails_the_sink_clearly_without_printing_it(tmp_path, hubspot, monkeypatch):
    cfg = _demo(tmp_path, hubspot)
    monkeypatch.setenv(TOKEN_ENV, "pat-wrong-secret-value")
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 1 and sink["status"] == "failed" and f"env:{TOKEN_ENV}" in sink["errors"][0] and "401" in sink["errors"][0]
    assert "pat-wrong-secret-value" not in json.dumps(report)


def test_validate_checks_the_token_and_creates_properties_only_when_asked(tmp_path, hubspot):
    del hubspot.properties["notes"][ID_PROP]
    cfg = _demo(tmp_path, hubspot)
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True)
    assert res.returncode == 2 and "no note property 'crmsync_interaction_id'" in res.stderr and "create_properties" in res.stderr
    assert ID_PROP not in hubspot.properties["notes"] and not hubspot.notes
    cfg.write_text(cfg.read_text().replace("[sinks.hubspot]\n", "[sinks.hubspot]\ncreate_properties = true\n"))
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "created property notes.crmsync_interaction_id" in res.stdout and ID_PROP in hubspot.properties["notes"]
    assert not hubspot.notes and not hubspot.contacts


def test_update_only_creates_no_contact(tmp_path, hubspot):
    seeded = _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot, sink_extra='contacts = "update-only"')
    code, report = run_json(cfg)
    assert code == 0, report
    assert set(hubspot.contacts) == set(seeded.values())
    notes = held(hubspot)
    assert len(notes) == 12 and {c for n in notes.values() for c in n["contacts"]} <= set(seeded.values())


def test_the_fake_refuses_what_hubspot_refuses(hubspot):
    """The local server is only useful if it rejects what the real API would."""
    import urllib.error
    import urllib.request

    def post(path, body, token=TOKEN):
        req = urllib.request.Request(hubspot.url + path, data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert post("/crm/v3/objects/notes/batch/create", {"inputs": [{"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"}}] * 101})[0] == 400
    assert post("/crm/v3/objects/notes/batch/create", {"inputs": [{"properties": {"hs_note_body": "x"}}]})[0] == 400  # no hs_timestamp
    status, body = post("/crm/v3/objects/notes/batch/create", {"inputs": [{"properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "nope": "x"}}]})
    assert status == 400 and "PROPERTY_DOESNT_EXIST" in body["message"]
    status, body = post("/crm/v3/objects/notes/batch/create", {"inputs": [{"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"}, "associations": [{"to": {"id": "999"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]}]})
    assert status == 400
    assert post("/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "a@x.org"}}]})[0] == 201
    status, body = post("/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "A@X.org"}}]})
    assert status == 409 and re.search(r"Existing ID: \d+", body["message"])
    assert post("/crm/v3/objects/notes/search", {"limit": 201})[0] == 400
    assert post("/crm/v3/objects/notes/search", {"limit": 1}, token="bad")[0] == 401


def test_dry_run_plan_names_what_it_would_create_and_associate(tmp_path, hubspot):
    seeded = _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot)
    cfg.write_text(cfg.read_text().replace("[sinks.hubspot]\n", "[sinks.hubspot]\nenabled = false\n"))
    assert run_json(cfg)[0] == 0  # the store holds the demo; the sink has not run
    cfg.write_text(cfg.read_text().replace("[sinks.hubspot]\nenabled = false\n", "[sinks.hubspot]\n"))
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--dry-run", "--json"], capture_output=True, text=True)
    sink = json.loads(res.stdout)["sinks"][0]
    plan = {line.split(" ", 2)[2]: int(line.split(" ", 2)[1]) for line in sink["notes"] if line.startswith("plan:")}
    assert plan["notes to create"] == 12 and plan["notes on CRM-linked contacts"] >= 1
    assert plan["contacts to upsert by email, notes associated with them"] >= 1
    assert not hubspot.notes and set(hubspot.contacts) == set(seeded.values()), "a dry run writes nothing"


@pytest.mark.slow
@pytest.mark.parametrize(("endpoint", "nth", "search"), [("notes/batch/create", 1, "always"), ("notes/batch/create", 2, "unknown"), ("contacts/batch/upsert", 2, "always")])
def test_a_kill_at_the_write_loses_and_duplicates_nothing(tmp_path, hubspot, endpoint, nth, search):
    cfg = _demo(tmp_path, hubspot, sink_extra=f'batch_size = 10\nsearch_before_create = "{search}"', posts=30)
    assert kill_while_applied(cfg, hubspot, endpoint, nth) == -9
    finish(cfg)
    _check_exactly_once(hubspot, cfg)


def test_contacts_read_back_follow_edits(tmp_path, hubspot):
    seeded = _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot)
    assert run_json(cfg)[0] == 0
    hubspot._touch("contacts", seeded["camille"], {"email": "camille.new@durand.example", "twitterhandle": "@camille_flies"})
    assert run_json(cfg)[0] == 0
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.store import Store

    store = Store(load_config(cfg, get_host()).store_url)
    try:
        (camille,) = [c for c in store.identities.contacts() if c.crm_ids.get("hubspot") == seeded["camille"]]
    finally:
        store.dispose()
    assert "camille.new@durand.example" in camille.emails and "twitter:camille_flies" in camille.handles


@pytest.mark.slow
def test_forget_archives_the_persons_notes_in_hubspot(tmp_path, hubspot):
    _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot)
    for _ in range(2):  # the second run links authors to the contacts the first created
        code, _report = run_json(cfg)
        assert code == 0
    stored = export(cfg)
    toms = {i for i, r in stored.items() if r["author"] and "tom.baker@example.org" in [e.lower() for e in r["author"]["emails"]]}
    notes = held(hubspot)
    assert len(toms) == 4 and toms <= set(notes)
    forgotten = forget_json(cfg, "tom.baker@example.org")
    (sink,) = forgotten["sinks"]
    assert sink["deleted"] == 4 and sink["left"] == [] and sink["people_note"] is None
    left = held(hubspot)
    assert not toms & set(left) and len(left) == len(notes) - 4
    assert {notes[i]["note"] for i in toms} <= hubspot.archived["notes"]
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["delivered"] == 0 and held(hubspot) == left



@pytest.mark.slow
def test_forget_archives_the_contact_crmsync_created_and_leaves_the_crms_own(tmp_path, hubspot):
    seeded = _seed_demo_contacts(hubspot)
    cfg = _demo(tmp_path, hubspot)
    code, _report = run_json(cfg)
    assert code == 0
    lee = [cid for cid, c in hubspot.contacts.items() if (c["properties"].get("email") or "").lower() == "lee.chun@example.net"]
    assert len(lee) == 1
    forgotten = forget_json(cfg, "lee.chun@example.net")
    assert forgotten["sinks"][0]["people_deleted"] == 1
    assert lee[0] not in hubspot.contacts and lee[0] in hubspot.archived["contacts"]
    assert set(seeded.values()) <= set(hubspot.contacts)  # the CRM's own contacts stay
