"""The salesforce sink and source against a local TLS server that enforces Salesforce's
documented behaviour (tests/fakes/salesforce.py): collections, Bulk 2.0, refusals, kills."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import crmsync

from crmsync.testing import get_sink_test_class, get_source_test_class
from crmsync_salesforce import SalesforceContactsSource, SalesforceSink

from .conftest import crmsync_cmd
from .crm_e2e import PerTest, closed_port_url, demo_copy, export, finish, forget_json, kill_while_applied, quarantined, run_json
from .fakes.salesforce import FakeSalesforce

SESSION_ENV = "CRMSYNC_TEST_SF_SESSION"
SESSION = "00Dxx0000001gPL!AQ4AQFakeSessionToken"
os.environ[SESSION_ENV] = SESSION

def _start(directory: Path) -> FakeSalesforce:
    d = directory / "sf"
    d.mkdir(parents=True, exist_ok=True)
    return FakeSalesforce(d, SESSION).__enter__()


_fake = PerTest(_start, lambda fake: fake.__exit__())


@pytest.fixture(autouse=True)
def _stop_fakes():
    yield
    _fake.stop_all()


@pytest.fixture
def sf(tmp_path: Path) -> FakeSalesforce:
    return _fake(tmp_path)


def options(fake: FakeSalesforce) -> dict:
    return {"instance_url": fake.instance_url, "session_id": f"env:{SESSION_ENV}", "ca_file": fake.ca_file}


def held(fake: FakeSalesforce) -> dict[str, dict]:
    """Tasks by interaction id (the external id is unique, so the fake cannot hold one twice)."""
    out: dict[str, dict] = {}
    for tid, t in fake.records["Task"].items():
        iid = t["Crmsync_Id__c"]
        assert iid not in out
        out[iid] = {"task": tid, **t}
    return out


TestSalesforceSink = get_sink_test_class(
    SalesforceSink,
    lambda tmp: options(_fake(tmp)),
    read_back=lambda opts, tmp: [{"interaction_id": i, "title": t["Subject"]} for i, t in held(_fake[tmp]).items()],
    unreachable_config=lambda tmp: {"instance_url": closed_port_url("https"), "session_id": f"env:{SESSION_ENV}", "retry_attempts": 1},
)


def _seeded(tmp: Path) -> dict:
    fake = _fake(tmp)
    if not fake.records["Contact"]:
        fake.add("Contact", FirstName="Ann", LastName="Example", Email="ann@example.org", **{"Account.Name": "Example Ltd"})
        fake.add("Contact", FirstName="Bob", LastName="Example", Email="bob@example.org")
        fake.add("Lead", FirstName="Carol", LastName="Example", Email="carol@example.org", Company="Carol Co")
    return options(fake)


TestSalesforceSource = get_source_test_class(SalesforceContactsSource, _seeded, min_records=3)


def _demo(tmp: Path, fake: FakeSalesforce, sink_extra: str = "", posts: int = 0) -> Path:
    """The demo with Salesforce as its CRM: Contacts and Leads read from it, Tasks written to it."""
    target = demo_copy(tmp, posts)
    conn = f'instance_url = "{fake.instance_url}"\nsession_id = "env:{SESSION_ENV}"\nca_file = "{fake.ca_file}"'
    cfg = (target / "crmsync.toml").read_text()
    cfg = cfg.replace('[sources.crm_contacts]\nplugin = "crm_csv"\nfile = "crm/contacts.csv"\ncrm = "generic"', f'[sources.crm_contacts]\nplugin = "salesforce"\n{conn}')
    cfg = cfg.replace('[sinks.crm_import]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"', f'[sinks.salesforce]\nplugin = "salesforce"\n{conn}\n{sink_extra}')
    (target / "crmsync.toml").write_text(cfg)
    return target / "crmsync.toml"


def _seed_demo(fake: FakeSalesforce) -> dict[str, str]:
    return {
        "tom": fake.add("Contact", FirstName="Tom", LastName="Baker", Email="Tom.Baker@example.org"),
        "camille": fake.add("Lead", FirstName="Camille", LastName="Durand", Email="camille@durand.example", Company="Club Fusée Lyon"),
    }


def _check_exactly_once(fake: FakeSalesforce, cfg: Path) -> dict[str, dict]:
    tasks = held(fake)
    stored = export(cfg)
    assert set(tasks) == set(stored)
    people = {**fake.records["Contact"], **fake.records["Lead"]}
    emails = [p["Email"].lower() for p in people.values() if p.get("Email")]
    assert len(emails) == len(set(emails)), "an author got two records"
    for iid, t in tasks.items():  # on the record of the author's email
        author_emails = {e.lower() for e in ((stored[iid]["author"] or {}).get("emails") or [])}
        if author_emails:
            assert people[t["WhoId"]]["Email"].lower() in author_emails
    return tasks


@pytest.mark.slow
def test_demo_lands_in_salesforce_once_on_the_matched_records(tmp_path, sf):
    seeded = _seed_demo(sf)
    cfg = _demo(tmp_path, sf)
    code, report = run_json(cfg)
    assert code == 0, report
    tasks = _check_exactly_once(sf, cfg)
    assert len(tasks) == 12 and report["sinks"][0]["delivered"] == 12
    stored = export(cfg)
    toms = [i for i, r in stored.items() if r["author"] and "tom.baker@example.org" in [e.lower() for e in r["author"]["emails"]]]
    assert toms and all(tasks[i]["WhoId"] == seeded["tom"] for i in toms)
    assert all(stored[i]["author"]["crm_ids"].get("salesforce") == seeded["tom"] for i in toms), "identity linked the author to the CRM contact"
    assert all(t["Status"] == "Completed" and len(t["Subject"]) <= 255 for t in tasks.values())
    replies = [i for i, r in stored.items() if r["extra"].get("business_reply")]
    assert replies and all("WhoId" not in tasks[i] for i in replies), "a business's reply is no Lead"
    assert not any("business reply" in f"{p.get('FirstName')} {p.get('LastName')}" for p in sf.records["Lead"].values())
    run_json(cfg)  # the Leads the sink created are read back and linked (an update to the same Task)
    before = dict(sf.requests)
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["delivered"] == 0
    assert sf.requests["collections"] == before.get("collections", 0), "a run with nothing new writes nothing"
    assert {i: t["task"] for i, t in held(sf).items()} == {i: t["task"] for i, t in tasks.items()}, "the same Task records, upserted in place"


@pytest.mark.slow
def test_bulk_api_above_the_threshold_and_full_collections_below(tmp_path, sf):
    cfg = _demo(tmp_path, sf, sink_extra="batch_size = 1000\nbulk_threshold = 100\nbulk_poll = 0", posts=240)
    code, report = run_json(cfg)
    assert code == 0, report
    tasks = _check_exactly_once(sf, cfg)
    assert len(tasks) == 252 and sf.requests["bulk"] >= 4  # job, upload, close, state, results
    assert sf.requests["collections"] <= 2  # new authors (Leads), 200 a request
    fake2 = _fake(tmp_path / "b")
    cfg2 = _demo(tmp_path / "b", fake2, posts=240)
    assert run_json(cfg2)[0] == 0
    assert len(held(fake2)) == 252
    assert fake2.requests["collections"] <= 2 * -(-252 // 200) + 1 and fake2.requests["bulk"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("failpoints", ["sink.after_write:1", "sink.after_ledger:1"])
def test_a_kill_in_the_sink_phase_loses_and_duplicates_nothing(tmp_path, sf, failpoints):
    _seed_demo(sf)
    cfg = _demo(tmp_path, sf, sink_extra="batch_size = 5", posts=30)
    code, _ = run_json(cfg, failpoints=failpoints)
    assert code == -9
    finish(cfg)
    _check_exactly_once(sf, cfg)


@pytest.mark.slow
def test_a_dropped_answer_and_5xx_are_retried_without_duplicates(tmp_path, sf):
    sf.drop_after_apply = {"collections": {2}}
    sf.force_503 = 2
    cfg = _demo(tmp_path, sf)
    code, report = run_json(cfg)
    assert code == 0, report
    _check_exactly_once(sf, cfg)


@pytest.mark.slow
def test_a_refused_task_is_quarantined_and_the_rest_lands(tmp_path, sf):
    sf.fields["Task"]["Crmsync_Lang__c"] = {"length": 2}
    cfg = _demo(tmp_path, sf, sink_extra='task_fields = { Crmsync_Lang__c = "sentiment_label" }')
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    stored = export(cfg)
    labelled = {i for i, r in stored.items() if r.get("sentiment")}
    assert labelled and code == 1 and sink["rejected"] == len(labelled)
    assert set(held(sf)) == set(stored) - labelled
    listed = quarantined(cfg, "sink:salesforce")
    assert {i["ref"] for i in listed} == labelled and all("STRING_TOO_LONG" in i["reason"] for i in listed)
    raw = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "quarantine", "show", str(listed[0]["id"]), "--raw"], capture_output=True, text=True, check=True).stdout
    assert "STRING_TOO_LONG" in raw and SESSION not in raw


@pytest.mark.slow
def test_long_text_is_cut_to_the_field_limits(tmp_path, sf):
    cfg = _demo(tmp_path, sf)
    item = f"<item><title>{'T' * 400}</title><link>https://long.example/1</link><guid>https://long.example/1</guid><description>{'word ' * 10000}</description></item>"
    (cfg.parent / "feeds" / "long.rss.xml").write_text(f'<rss version="2.0"><channel><title>Long</title><link>https://long.example/</link>{item}</channel></rss>')
    code, report = run_json(cfg)
    assert code == 0, report
    (task,) = [t for t in held(sf).values() if t["Subject"].startswith("TTT")]
    assert len(task["Subject"]) == 255 and task["Subject"].endswith("…[truncated]")
    assert len(task["Description"]) <= 32000 and "…[truncated]" in task["Description"] and "Link: https://long.example/1" in task["Description"]


def test_an_expired_session_is_a_clear_error(tmp_path, sf, monkeypatch):
    cfg = _demo(tmp_path, sf)
    monkeypatch.setenv(SESSION_ENV, "00Dexpired!token")
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 1 and sink["status"] == "failed" and "401" in sink["errors"][0]
    assert "00Dexpired!token" not in json.dumps(report)


def test_request_limit_exceeded_fails_the_sink_and_keeps_the_backlog(tmp_path, sf):
    cfg = _demo(tmp_path, sf)
    sf.force_403 = 1000
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 1 and "API request limit" in sink["errors"][0] and sink["backlog"] == 12
    sf.force_403 = 0
    code, report = run_json(cfg)
    assert code == 0 and report["sinks"][0]["delivered"] == 12


def test_validate_names_the_missing_external_id_field(tmp_path, sf):
    del sf.fields["Task"]["Crmsync_Id__c"]
    cfg = _demo(tmp_path, sf)
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True)
    assert res.returncode == 2 and "Task has no 'Crmsync_Id__c'" in res.stderr and "Object Manager > Activity" in res.stderr
    sf.fields["Task"]["Crmsync_Id__c"] = {"length": 255, "externalId": True}
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "[sinks.salesforce]: logged in to" in res.stdout and not sf.records["Task"]


def test_update_only_creates_no_lead(tmp_path, sf):
    seeded = _seed_demo(sf)
    cfg = _demo(tmp_path, sf, sink_extra='contacts = "update-only"')
    code, report = run_json(cfg)
    assert code == 0, report
    assert set(sf.records["Contact"]) | set(sf.records["Lead"]) == set(seeded.values())
    tasks = held(sf)
    assert len(tasks) == 12 and {t.get("WhoId") for t in tasks.values()} <= {*seeded.values(), None}


def test_the_fake_refuses_what_salesforce_refuses(sf):
    import requests

    s = requests.Session()
    s.verify = sf.ca_file
    s.trust_env = False  # an environment REQUESTS_CA_BUNDLE would override verify
    url = f"{sf.instance_url}/services/data/v59.0/composite/sobjects/Task/Crmsync_Id__c"
    h = {"Authorization": f"Bearer {SESSION}"}
    r = s.patch(url, json={"allOrNone": False, "records": [{"attributes": {"type": "Task"}, "Crmsync_Id__c": str(n)} for n in range(201)]}, headers=h)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    r = s.patch(url, json={"allOrNone": False, "records": [{"attributes": {"type": "Task"}, "Crmsync_Id__c": "a", "Nope__c": 1}, {"attributes": {"type": "Task"}, "Crmsync_Id__c": "b", "WhoId": "003000000000000999"}]}, headers=h)
    assert [e["statusCode"] for res in r.json() for e in res["errors"]] == ["INVALID_FIELD", "INVALID_CROSS_REFERENCE_KEY"]
    r = s.patch(url.replace("Task", "Lead"), json={"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "Crmsync_Id__c": "x", "LastName": "L"}]}, headers=h)
    assert r.json()[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"  # Company
    assert s.patch(url, json={"records": []}, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_dry_run_plan_names_what_it_would_upsert(tmp_path, sf):
    _seed_demo(sf)
    cfg = _demo(tmp_path, sf)
    cfg.write_text(cfg.read_text().replace("[sinks.salesforce]\n", "[sinks.salesforce]\nenabled = false\n"))
    assert run_json(cfg)[0] == 0
    cfg.write_text(cfg.read_text().replace("[sinks.salesforce]\nenabled = false\n", "[sinks.salesforce]\n"))
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--dry-run", "--json"], capture_output=True, text=True)
    notes = json.loads(res.stdout)["sinks"][0]["notes"]
    assert "plan: 12 Tasks to upsert (new)" in notes
    assert any(n.startswith("plan: ") and "Tasks with WhoId from a CRM-linked record" in n for n in notes)
    assert any("upserted as Leads by Crmsync_Id__c" in n for n in notes)
    assert not sf.records["Task"]


@pytest.mark.slow
@pytest.mark.parametrize("nth", [1, 3])
def test_a_kill_at_the_write_loses_and_duplicates_nothing(tmp_path, sf, nth):
    cfg = _demo(tmp_path, sf, sink_extra="batch_size = 10", posts=30)
    assert kill_while_applied(cfg, sf, "collections", nth) == -9
    finish(cfg)
    _check_exactly_once(sf, cfg)


def test_the_login_flows_pass_their_secrets_to_simple_salesforce(tmp_path, monkeypatch):
    """The OAuth/password logins go to *.salesforce.com, which the tests cannot reach:
    check each flow hands simple-salesforce the right, resolved credentials."""
    import simple_salesforce

    from crmsync.testing import kit_config, kit_host

    seen = []

    class Recorder:
        def __init__(self, **kwargs):
            seen.append(kwargs)
            self.sf_instance = "acme.my.salesforce.com"

    monkeypatch.setattr(simple_salesforce, "Salesforce", Recorder)
    monkeypatch.setenv("T_SF_PASSWORD", "pw-value")
    monkeypatch.setenv("T_SF_TOKEN", "token-value")
    monkeypatch.setenv("T_SF_SECRET", "secret-value")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    flows = {
        "password": {"username": "u@acme.example", "password": "env:T_SF_PASSWORD", "security_token": "env:T_SF_TOKEN", "domain": "test"},
        "client_credentials": {"consumer_key": "ck", "consumer_secret": "env:T_SF_SECRET", "domain": "acme.my"},
        "jwt": {"consumer_key": "ck", "private_key": f"file:{tmp_path / 'key.pem'}", "username": "u@acme.example"},
    }
    for name, opts in flows.items():
        cfg = kit_config(tmp_path, kit_host(sinks=[SalesforceSink]), sinks={name: ("salesforce", {**opts, "api_version": "61.0"})})
        sink = SalesforceSink(name, cfg.resolved_options(cfg.sinks[name]))
        sink.open()
        assert sink.api.instance_url == "https://acme.my.salesforce.com"
    pw, cc, jwt = seen
    assert (pw["username"], pw["password"], pw["security_token"], pw["domain"], pw["version"]) == ("u@acme.example", "pw-value", "token-value", "test", "61.0")
    assert (cc["consumer_key"], cc["consumer_secret"], cc["domain"]) == ("ck", "secret-value", "acme.my")
    assert jwt["privatekey"].startswith("-----BEGIN PRIVATE KEY-----") and jwt["username"] == "u@acme.example"
    empty = kit_config(tmp_path, kit_host(sinks=[SalesforceSink]), sinks={"none": ("salesforce", {})})
    with pytest.raises(crmsync.ConfigError, match="no Salesforce credentials"):
        SalesforceSink("none", empty.resolved_options(empty.sinks["none"])).open()


def test_contacts_read_back_follow_edits_and_results_are_reported(tmp_path, sf):
    seeded = _seed_demo(sf)
    cfg = _demo(tmp_path, sf)
    code, report = run_json(cfg)
    assert code == 0, report
    assert "Salesforce: 12 Task(s) created, 0 updated (per-record upsert results)" in report["sinks"][0]["notes"]
    sf.records["Contact"][seeded["tom"]].update(Email="tom@baker-joinery.example", LastModifiedDate="2099-01-01T00:00:00.000+0000")
    code, report = run_json(cfg)
    assert code == 0
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.store import Store

    store = Store(load_config(cfg, get_host()).store_url)
    try:
        (tom,) = [c for c in store.identities.contacts() if c.crm_ids.get("salesforce") == seeded["tom"]]
    finally:
        store.dispose()
    assert "tom@baker-joinery.example" in tom.emails


@pytest.mark.slow
def test_forget_deletes_the_persons_tasks_in_salesforce(tmp_path, sf):
    _seed_demo(sf)
    cfg = _demo(tmp_path, sf)
    for _ in range(2):  # the second run links authors to the Leads the first created
        code, _report = run_json(cfg)
        assert code == 0
    stored = export(cfg)
    toms = {i for i, r in stored.items() if r["author"] and "tom.baker@example.org" in [e.lower() for e in r["author"]["emails"]]}
    tasks = held(sf)
    assert len(toms) == 4 and toms <= set(tasks)
    forgotten = forget_json(cfg, "tom.baker@example.org")
    assert forgotten["sinks"][0]["deleted"] == 4
    left = held(sf)
    assert not toms & set(left) and len(left) == len(tasks) - 4
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["delivered"] == 0 and held(sf) == left


@pytest.mark.slow
def test_forget_deletes_the_lead_crmsync_created_and_leaves_the_crms_own(tmp_path, sf):
    seeded = _seed_demo(sf)
    cfg = _demo(tmp_path, sf)
    code, _report = run_json(cfg)
    assert code == 0
    lee = [rid for rid, r in sf.records["Lead"].items() if (r.get("Email") or "").lower() == "lee.chun@example.net"]
    assert len(lee) == 1 and sf.records["Lead"][lee[0]].get("Crmsync_Id__c")
    forgotten = forget_json(cfg, "lee.chun@example.net")
    assert forgotten["sinks"][0]["people_deleted"] == 1
    assert lee[0] not in sf.records["Lead"] and lee[0] in sf.deleted
    assert seeded["tom"] in sf.records["Contact"] and seeded["camille"] in sf.records["Lead"]
