"""The tryton sink and source against a real Tryton server (trytond + party, SQLite).

Each test starts its own trytond on 127.0.0.1 over a fresh copy of an
initialised database (crmsync_tryton.devserver: trytond lives in a venv of its
own, installed from PyPI on first use) and reads the CRM back through its own
JSON-RPC API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from crmsync.testing import get_sink_test_class, get_source_test_class
from crmsync_tryton import TrytonContactsSource, TrytonSink
from crmsync_tryton.devserver import TrytonServer

from .conftest import crmsync_cmd
from .crm_e2e import PerTest, closed_port_url, demo_copy, export, finish, forget_json, quarantined, run_json

PASSWORD_ENV = "CRMSYNC_TEST_TRYTON_PASSWORD"
os.environ[PASSWORD_ENV] = TrytonServer.password
MARKER = re.compile(r"\[crmsync:([0-9a-f-]{36}) v(\d+)\]\s*$")

def _start(directory: Path) -> TrytonServer:
    try:
        return TrytonServer(directory / "tryton").start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Tryton cannot be installed or started here: {exc}")


_server = PerTest(_start, lambda server: server.stop())


@pytest.fixture(autouse=True)
def _stop_servers():
    yield
    _server.stop_all()


@pytest.fixture
def tryton(tmp_path: Path) -> TrytonServer:
    return _server(tmp_path)


def connection(server: TrytonServer) -> dict:
    return {"url": server.url, "database": server.database, "username": server.username, "password": f"env:{PASSWORD_ENV}"}


def held(server: TrytonServer) -> dict[str, dict]:
    """Notes crmsync wrote, by interaction id; fails on a duplicate."""
    out: dict[str, dict] = {}
    for n in server.notes():
        m = MARKER.search(n["message"])
        assert m, f"a note without crmsync's marker: {n}"
        assert m.group(1) not in out, f"interaction {m.group(1)} is in Tryton twice"
        out[m.group(1)] = {"note": n["id"], "party": int(n["resource"].split(",")[1]), "version": int(m.group(2)), "message": n["message"]}
    return out


def _kit_read_back(options: dict, tmp: Path) -> list[dict]:
    rows = []
    for iid, note in held(_server[tmp]).items():
        rows.append({"interaction_id": iid, "title": note["message"].split("\n", 1)[0]})
    return rows


TestTrytonSink = get_sink_test_class(
    TrytonSink,
    lambda tmp: {**connection(_server(tmp)), "unmatched_party": "Unmatched authors"},
    read_back=_kit_read_back,
    unreachable_config=lambda tmp: {"url": closed_port_url(), "database": "crm", "password": f"env:{PASSWORD_ENV}", "timeout": 5},
)


def _seeded_source_config(tmp: Path) -> dict:
    server = _server(tmp)
    if server.rpc("party.party", "search", [], 0, None, None):
        return connection(server)  # seeded by an earlier call of this test
    server.rpc("party.party", "create", [
        {"name": "Ann Example", "contact_mechanisms": [["create", [{"type": "email", "value": "ann@example.org"}]]]},
        {"name": "Bob Example", "contact_mechanisms": [["create", [{"type": "email", "value": "bob@example.org"}, {"type": "website", "value": "https://bob.example"}]]]},
        {"name": "Acme Inc."},
    ])
    return connection(server)


TestTrytonSource = get_source_test_class(TrytonContactsSource, _seeded_source_config, bad_config=None, min_records=3)


# end to end: the demo into a running CRM -------------------------------------------------
def _demo(tmp: Path, server: TrytonServer, extra: str = "") -> Path:
    target = demo_copy(tmp)
    cfg = (target / "crmsync-tryton.toml").read_text()
    cfg = cfg.replace('url = "http://127.0.0.1:8000"', f'url = "{server.url}"').replace("env:TRYTON_PASSWORD", f"env:{PASSWORD_ENV}")
    (target / "crmsync-tryton.toml").write_text(cfg + extra)
    return target / "crmsync-tryton.toml"


def _seed_demo_contacts(server: TrytonServer) -> dict[str, int]:
    """The demo's CRM contacts, as parties (Tom Baker's email in another case)."""
    ids = server.rpc("party.party", "create", [
        {"name": "Tom Baker", "contact_mechanisms": [["create", [{"type": "email", "value": "Tom.Baker@example.org"}]]]},
        {"name": "Camille Durand", "contact_mechanisms": [["create", [{"type": "email", "value": "camille@durand.example"}]]]},
        {"name": "José Martínez", "contact_mechanisms": [["create", [{"type": "email", "value": "jose@martinez.example"}]]]},
    ])
    return dict(zip(["tom", "camille", "jose"], ids, strict=True))


@pytest.mark.slow
def test_demo_lands_in_tryton_exactly_once_on_the_right_parties(tmp_path, tryton):
    seeded = _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    code, report = run_json(cfg)
    assert code == 0, report
    stored = export(cfg)
    notes = held(tryton)
    assert set(notes) == set(stored) and len(stored) == 12
    assert report["sinks"][0]["delivered"] == 12
    parties = {p["id"]: p for p in tryton.parties()}
    # every note is on a party whose email is its author's (case aside), or on the unmatched party
    for iid, note in notes.items():
        author = stored[iid]["author"] or {}
        emails = {e.casefold() for e in author.get("emails", [])}
        party = parties[note["party"]]
        if emails:
            assert emails & {e.casefold() for e in party["emails"]}, (author, party)
        else:
            assert party["name"] == "Unmatched authors", (author, party)
    # the seeded parties were used, never duplicated: one party per email
    all_emails = [e.casefold() for p in parties.values() for e in p["emails"]]
    assert len(all_emails) == len(set(all_emails))
    assert any(n["party"] == seeded["tom"] for n in notes.values())
    # the next run reads back the party the sink created for a new author: the link it
    # makes re-delivers that author's record as an update (replaced on the same party)
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["created"] == 0
    assert again["sinks"][0]["updated"] == again["identity"]["relinked"] <= len(parties) - len(seeded)
    relinked = held(tryton)
    assert relinked == notes, "the same notes: a relink changes nothing a note shows"
    # after that a re-run sends nothing and changes nothing
    code, third = run_json(cfg)
    assert code == 0 and third["sinks"][0]["delivered"] == 0
    assert held(tryton) == relinked


@pytest.mark.slow
def test_an_edit_replaces_the_note_and_a_crash_between_create_and_delete_heals(tmp_path, tryton):
    cfg = _demo(tmp_path, tryton)
    assert run_json(cfg)[0] == 0
    before = held(tryton)
    code, relinked = run_json(cfg)  # the authors the sink created parties for are linked to them now
    assert code == 0 and relinked["identity"]["relinked"] > 0 and relinked["sinks"][0]["updated"] == relinked["identity"]["relinked"]
    assert held(tryton) == before, "a new version that changes nothing a note shows keeps its note"
    mbox = cfg.parent / "mail" / "support.mbox"
    text = mbox.read_text()
    edited = text.replace("for our schools. Can you quote?", "for our SCHOOLS. Can you quote?")
    assert edited != text
    mbox.write_text(edited)
    code, report = run_json(cfg)
    assert code == 0 and report["sinks"][0]["updated"] >= 1
    after = held(tryton)  # exactly one note per interaction, the edited one replaced
    assert set(after) == set(before)
    (changed,) = [i for i in after if "SCHOOLS" in after[i]["message"]]
    assert after[changed]["note"] != before[changed]["note"] and after[changed]["version"] > before[changed]["version"]
    assert all(after[i]["note"] == before[i]["note"] for i in after if i != changed), "only the edited note is replaced"
    # the state a crash between creating the new note and deleting the old one leaves: both
    old = before[changed]
    tryton.rpc("ir.note", "create", [{"resource": f"party.party,{old['party']}", "message": old["message"]}])
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.store import Store

    store = Store(load_config(cfg, get_host()).store_url)
    try:
        store.ledger.reset("tryton")  # the receipt was lost with the crash
    finally:
        store.dispose()
    code, report = run_json(cfg)
    assert code == 0
    healed = held(tryton)
    assert set(healed) == set(after) and "SCHOOLS" in healed[changed]["message"]
    assert {i: n["note"] for i, n in healed.items()} == {i: n["note"] for i, n in after.items()}, "notes that were right were not re-created"


@pytest.mark.slow
@pytest.mark.parametrize(("failpoints", "search"), [("sink.after_write:1", "always"), ("sink.after_write:2", "unknown"), ("sink.after_ledger:1", "unknown")])
def test_a_kill_in_the_sink_phase_loses_and_duplicates_nothing(tmp_path, tryton, failpoints, search):
    _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    text = cfg.read_text().replace('[sinks.tryton]\nplugin = "tryton"', f'[sinks.tryton]\nplugin = "tryton"\nbatch_size = 3\nsearch_before_create = "{search}"')
    cfg.write_text(text)
    code, _ = run_json(cfg, failpoints=failpoints)
    assert code == -9
    finish(cfg)
    notes = held(tryton)  # fails on a duplicate
    assert set(notes) == set(export(cfg))
    parties = tryton.parties()
    emails = [e.casefold() for p in parties for e in p["emails"]]
    assert len(emails) == len(set(emails)), "a party was created twice"


@pytest.mark.slow
def test_contacts_read_back_link_authors_and_follow_edits(tmp_path, tryton):
    seeded = _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    code, report = run_json(cfg)
    src = {s["name"]: s for s in report["sources"]}
    assert src["crm_parties"]["identities"] >= 3
    notes = held(tryton)
    toms = [r for r in export(cfg).values() if r["author"] and "tom.baker@example.org" in [e.lower() for e in r["author"]["emails"]]]
    assert toms and all(r["author"]["crm_ids"].get("tryton") == str(seeded["tom"]) for r in toms)
    assert all(notes[r["interaction_id"]]["party"] == seeded["tom"] for r in toms)
    run_json(cfg)  # the parties the sink created are read back (and relinked)
    # a contact edited in the CRM flows into matching on the next run
    (mech,) = tryton.rpc("party.contact_mechanism", "search", [["party", "=", seeded["camille"]]], 0, None, None)
    tryton.rpc("party.contact_mechanism", "write", [mech], {"value": "camille.new@durand.example"})
    code, third = run_json(cfg)
    assert code == 0
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.store import Store

    store = Store(load_config(cfg, get_host()).store_url)
    try:
        contacts = [c for c in store.identities.contacts() if c.crm_ids.get("tryton") == str(seeded["camille"])]
    finally:
        store.dispose()
    assert contacts and "camille.new@durand.example" in contacts[0].emails


@pytest.mark.slow
def test_update_only_never_creates_a_party_and_reports_the_rest_invalid(tmp_path, tryton):
    _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    text = cfg.read_text().replace('unmatched_party = "Unmatched authors"\n', 'contacts = "update-only"\n')
    cfg.write_text(text)
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 1 and sink["invalid"] > 0 and sink["delivered"] + sink["invalid"] == 12
    assert len(tryton.parties()) == 3, "update-only created a party"
    listed = quarantined(cfg, "sink:tryton")
    assert len(listed) == sink["invalid"] and all(any(why in i["reason"] for why in ("update-only", "has no author", "has no contact")) for i in listed)


def test_a_wrong_password_is_a_clear_error_without_the_password(tmp_path, tryton, monkeypatch):
    cfg = _demo(tmp_path, tryton)
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    code, report = run_json(cfg)
    sink = report["sinks"][0]
    assert code == 1 and sink["status"] == "failed"
    assert "refused the login of 'admin'" in sink["errors"][0] and "not-the-password" not in json.dumps(report)


def test_validate_checks_the_connection_and_writes_nothing(tmp_path, tryton, monkeypatch):
    cfg = _demo(tmp_path, tryton)
    ok = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "[sinks.tryton]: logged in to" in ok.stdout and "[sources.crm_parties]: logged in to" in ok.stdout
    assert tryton.parties() == [] and tryton.notes() == []
    bad = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate"], capture_output=True, text=True, env={**os.environ, PASSWORD_ENV: "wrong-password"})
    assert bad.returncode == 2 and "refused the login of 'admin'" in bad.stderr and "wrong-password" not in bad.stderr + bad.stdout
    offline = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "validate", "--offline"], capture_output=True, text=True, env={**os.environ, PASSWORD_ENV: "wrong-password"})
    assert offline.returncode == 0


def test_dry_run_plan_names_what_it_would_create(tmp_path, tryton):
    _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    cfg.write_text(cfg.read_text().replace("[sinks.tryton]\n", "[sinks.tryton]\nenabled = false\n"))
    assert run_json(cfg)[0] == 0
    cfg.write_text(cfg.read_text().replace("[sinks.tryton]\nenabled = false\n", "[sinks.tryton]\n"))
    res = subprocess.run([*crmsync_cmd(), "-c", str(cfg), "run", "--dry-run", "--json"], capture_output=True, text=True)
    notes = json.loads(res.stdout)["sinks"][0]["notes"]
    assert "plan: 12 notes to create" in notes and any("notes on the unmatched party 'Unmatched authors'" in n for n in notes)
    assert any("notes on CRM-linked parties" in n for n in notes)
    assert tryton.notes() == []


@pytest.mark.postgres
@pytest.mark.slow
def test_demo_into_tryton_on_postgresql_with_a_postgresql_store(tmp_path, postgres_url):
    """The same sync into a Tryton whose database is PostgreSQL, crmsync's store there too."""
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "crm"'))
        conn.execute(text('CREATE DATABASE "crmsync_store"'))
    admin.dispose()
    server_root = postgres_url.split("+psycopg", 1)[0] + postgres_url.split("+psycopg", 1)[1].rsplit("/", 1)[0] + "/"
    try:
        server = TrytonServer(tmp_path / "tryton-pg", postgres=server_root).start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Tryton on PostgreSQL cannot be set up here: {exc}")
    try:
        _seed_demo_contacts(server)
        cfg = _demo(tmp_path, server)
        store = postgres_url.rsplit("/", 1)[0] + "/crmsync_store"
        cfg.write_text(cfg.read_text().replace('[store]\npath = ".crmsync/crmsync-tryton.db"', '[store]\nurl = "env:T_STORE_URL"'))
        os.environ["T_STORE_URL"] = store
        code, report = run_json(cfg)
        assert code == 0, report
        notes = held(server)
        assert len(notes) == 12 and set(notes) == set(export(cfg))
        code, _ = run_json(cfg)  # the parties the sink made are read back and linked: the notes stay
        assert code == 0 and held(server) == notes
    finally:
        server.stop()
        os.environ.pop("T_STORE_URL", None)


@pytest.mark.slow
def test_the_documented_demo_command_fills_a_tryton(tmp_path):
    """README: `.venv/bin/python -m crmsync_tryton.demo` (on a copy of the demo)."""
    import socket
    import sys

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8000))
        except OSError:
            pytest.skip("port 8000, which demo/crmsync-tryton.toml names, is busy here")
    target = demo_copy(tmp_path)
    res = subprocess.run([sys.executable, "-m", "crmsync_tryton.demo", "--config", str(target / "crmsync-tryton.toml")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"party \d+: Tom Baker \['tom.baker@example.org'\] - 4 note\(s\)", res.stdout), res.stdout
    assert "Unmatched authors" in res.stdout and "tryton               tryton               12" in res.stdout


@pytest.mark.slow
def test_a_crash_then_the_author_changing_party_still_leaves_one_note(tmp_path, tryton):
    _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    base = cfg.read_text().replace('[sinks.tryton]\nplugin = "tryton"', '[sinks.tryton]\nplugin = "tryton"\nbatch_size = 1')
    # run 1: no party is created, so every unknown author's note goes to the unmatched party
    cfg.write_text(base.replace('unmatched_party = "Unmatched authors"\n', 'unmatched_party = "Unmatched authors"\ncontacts = "update-only"\n'))
    assert run_json(cfg)[0] == 0
    before = held(tryton)
    unmatched = {p["id"] for p in tryton.parties() if p["name"] == "Unmatched authors"}
    moved = {i for i, n in before.items() if n["party"] in unmatched}
    assert moved
    # ... and it crashed after its writes, before the ledger: receipts lost, creates journaled
    from crmsync.host.config import load_config
    from crmsync.host.plugins import get_host
    from crmsync.store import Store

    store = Store(load_config(cfg, get_host()).store_url)
    try:
        store.ledger.reset("tryton")
    finally:
        store.dispose()
    (cfg.parent / ".crmsync" / "plugins" / "tryton.tryton-creates.json").write_text(json.dumps(sorted(before)))
    # run 2: parties are created now, so those authors' notes belong on their own party
    cfg.write_text(base)
    finish(cfg)
    after = held(tryton)  # fails on a duplicate
    assert set(after) == set(export(cfg))
    assert any(after[i]["party"] not in unmatched for i in moved), "a note moved to its author's new party"


@pytest.mark.slow
def test_forget_deletes_the_persons_notes_in_tryton(tmp_path, tryton):
    _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    for _ in range(2):  # the second run settles the links to parties the first one created
        code, _report = run_json(cfg)
        assert code == 0
    stored = export(cfg)
    toms = {iid for iid, r in stored.items() if "tom.baker@example.org" in [e.lower() for e in (r["author"] or {}).get("emails", [])]}
    assert len(toms) == 4 and toms <= set(held(tryton))
    forgotten = forget_json(cfg, "tom.baker@example.org")
    assert forgotten["sinks"][0]["deleted"] == 4
    left = held(tryton)
    assert not toms & set(left) and len(left) == 12 - 4
    # the next run neither sends them back nor changes the rest
    code, again = run_json(cfg)
    assert code == 0 and again["sinks"][0]["delivered"] == 0 and held(tryton) == left


@pytest.mark.slow
def test_forget_deletes_the_party_crmsync_created_and_leaves_the_crms_own(tmp_path, tryton):
    seeded = _seed_demo_contacts(tryton)
    cfg = _demo(tmp_path, tryton)
    code, _report = run_json(cfg)
    assert code == 0
    parties = {p["id"]: p for p in tryton.parties()}
    lee = [pid for pid, p in parties.items() if "lee.chun@example.net" in [e.lower() for e in p["emails"]]]
    assert len(lee) == 1
    forgotten = forget_json(cfg, "lee.chun@example.net")
    assert forgotten["sinks"][0]["people_deleted"] == 1
    left = {p["id"] for p in tryton.parties()}
    assert lee[0] not in left and set(seeded.values()) <= left
