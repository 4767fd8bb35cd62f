"""CRM contact exports as users have them (issue 24): each shape is read with the preset
alone, or refused with a message that names the cause, and every decision is reported."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

import crmsync
from crmsync.contract.base import Context
from crmsync.host.config import validate_options
from crmsync.testing import kit_config, kit_host, kit_run
from crmsync_crm_csv import ContactsSource

from .conftest import crmsync_cmd

# the shapes, as third-party tools write them ---------------------------------------------
#: a Data Loader insert/upsert template: upper-case headers, an external id, no Id
SF_UPSERT_TEMPLATE = "FIRSTNAME,LASTNAME,EMAIL,ORACLE_ID__C,ACCOUNTID\nAda,Byron,ada@byron.example,ORA-001,001A\nAlan,Turing,alan@turing.example,ORA-002,001B\n"
#: an open-source marketing CRM's contacts: an email, no id, columns no preset knows
MARKETING = "email,firstname,lastname,companyname,phone,lead_score\nmia@shop.example,Mia,Wong,Shop Ltd,+44 20 1234,12\nraj@shop.example,Raj,Patel,,,\n"
#: a generic export whose columns the preset does not know at all
UNKNOWN_COLUMNS = "contact_id,email,Full Legal Name,Employer\nC1,ann@x.example,Ann Lee,Lee Inc\n"
SOBJECT_TREE = {
    "records": [
        {"attributes": {"type": "Contact", "referenceId": "ContactRef1"}, "FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.example", "Account": {"Name": "US Navy"}},
        {"attributes": {"type": "Contact", "referenceId": "ContactRef2"}, "FirstName": "Linus", "LastName": "T", "Email": "linus@kernel.example"},
    ]
}


def _read(tmp: Path, name: str, data: bytes, **options) -> tuple[list[crmsync.Identity], list[crmsync.Rejected], list[str]]:
    (tmp / name).write_bytes(data)
    opts = validate_options(ContactsSource.config_schema, {"file": name, **options}, where="test")
    source = ContactsSource("crm", opts, Context(config_dir=tmp))
    items = list(source.read(None))
    return [i for i in items if isinstance(i, crmsync.Identity)], [i for i in items if isinstance(i, crmsync.Rejected)], source.notes


def test_upper_case_custom_fields_are_salesforce_keyed_by_the_external_id(tmp_path):
    people, bad, notes = _read(tmp_path, "template.csv", SF_UPSERT_TEMPLATE.encode())
    assert not bad and [p.crm_ids for p in people] == [{"salesforce.ORACLE_ID__C": "ORA-001"}, {"salesforce.ORACLE_ID__C": "ORA-002"}]
    assert people[0].name == "Ada Byron" and people[0].emails == ["ada@byron.example"]
    (decision,) = [n for n in notes if n.startswith("template.csv: CSV")]
    assert "format salesforce (detected: custom field column 'ORACLE_ID__C' (…__c))" in decision
    assert "key: external id column 'ORACLE_ID__C' (no record id column" in decision


def test_an_email_only_export_is_keyed_by_email_and_says_what_it_left_unused(tmp_path):
    people, bad, notes = _read(tmp_path, "marketing.csv", MARKETING.encode())
    assert not bad and [p.crm_ids for p in people] == [{"generic.email": "mia@shop.example"}, {"generic.email": "raj@shop.example"}]
    assert people[0].company == "Shop Ltd" and people[0].name == "Mia Wong"
    assert any("key: email column 'email'" in n for n in notes)
    assert any(n == "marketing.csv: columns not used: phone, lead_score (map one with mapping.FIELD)" for n in notes)


def test_fields_empty_in_every_row_are_reported(tmp_path):
    people, _, notes = _read(tmp_path, "unknown.csv", UNKNOWN_COLUMNS.encode())
    assert people[0].name is None and people[0].company is None
    assert "unknown.csv: fields empty in every row: company, first_name, last_name, name, twitter, url" in notes
    assert "unknown.csv: columns not used: Full Legal Name, Employer (map one with mapping.FIELD)" in notes
    mapped, _, _ = _read(tmp_path, "unknown.csv", UNKNOWN_COLUMNS.encode(), mapping={"name": "Full Legal Name", "company": "Employer"})
    assert (mapped[0].name, mapped[0].company) == ("Ann Lee", "Lee Inc")


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-be"])
def test_utf32_with_a_bom_in_both_byte_orders(tmp_path, encoding):
    text = "Record ID,First Name,Last Name,Email\n951,Zoë,Ång,zoe@ang.example\n"
    data = text.encode(encoding) if encoding == "utf-32" else b"\x00\x00\xfe\xff" + text.encode("utf-32-be")
    people, bad, notes = _read(tmp_path, "u32.csv", data)
    assert not bad and people[0].crm_ids == {"hubspot": "951"} and people[0].name == "Zoë Ång"
    assert any(f"decoded as {'utf-32-le' if encoding == 'utf-32' else 'utf-32-be'};" in n for n in notes)


def test_latin1_without_a_bom_is_read_and_the_guess_is_reported(tmp_path):
    text = "contact_id,first_name,last_name,email\nC7,Ren\xe9,M\xfcller,rene@x.example\n"
    people, _, notes = _read(tmp_path, "latin1.csv", text.encode("latin-1"))
    assert people[0].name == "René Müller"
    assert any("decoded as cp1252 by guess (no BOM, not valid UTF-8; set encoding if that is wrong)" in n for n in notes)
    # an explicit encoding is honoured (and is no guess)
    people, _, notes = _read(tmp_path, "latin1.csv", text.encode("latin-1"), encoding="latin-1")
    assert people[0].name == "René Müller" and any("decoded as latin-1;" in n for n in notes)


def test_a_wrong_decoding_and_a_missing_key_are_named_with_the_mapping_in_force(tmp_path):
    data = "Kennung,Vorname\n1,Jürgen\n".encode("utf-32")
    with pytest.raises(crmsync.FatalError) as err:
        _read(tmp_path, "x.csv", data, encoding="utf-8", mapping={"id": "Kennung"})
    assert "mapping.id = 'Kennung' names no column" in str(err.value) and "does not look decoded right (decoded as utf-8; " in str(err.value)
    with pytest.raises(crmsync.FatalError) as err:
        _read(tmp_path, "y.csv", b"Vorname,Stadt\nJ,Berlin\n", format="salesforce")
    msg = str(err.value)
    assert "no column to key contacts by" in msg and "the salesforce preset's Id, Contact ID" in msg and "set mapping.id, mapping.external_id or mapping.email" in msg


def test_salesforce_cli_sobject_tree_json_and_json_lines(tmp_path):
    people, bad, notes = _read(tmp_path, "contacts.json", json.dumps(SOBJECT_TREE).encode())
    assert not bad and [p.emails for p in people] == [["grace@navy.example"], ["linus@kernel.example"]]
    assert people[0].company == "US Navy" and people[0].crm_ids == {"salesforce.Email": "grace@navy.example"}
    assert any("sObject-tree JSON" in n and "format salesforce" in n and "objects of type Contact" in n for n in notes)
    lines = b'{"id": "C1", "email": "a@x.example", "name": "A"}\n{"id": "C2", "email": "b@x.example", "name": "B"}\n'
    people, _, notes = _read(tmp_path, "contacts.jsonl", lines)
    assert [p.crm_ids for p in people] == [{"generic": "C1"}, {"generic": "C2"}] and any("JSON Lines" in n for n in notes)


def test_what_is_not_a_csv_is_refused_as_such(tmp_path):
    with pytest.raises(crmsync.FatalError, match="not a CSV file: it is a zip archive"):
        _read(tmp_path, "contacts.xlsx", b"PK\x03\x04rest-of-a-workbook")
    with pytest.raises(crmsync.FatalError, match="not a CSV file, and its JSON holds no list of contact objects"):
        _read(tmp_path, "odd.json", b'{"contacts": 3}')


def test_anonymous_rows_are_named_and_can_be_skipped(tmp_path):
    data = b"email,firstname,phone\na@x.example,Ann,1\n,,2\n"
    people, bad, _ = _read(tmp_path, "a.csv", data)
    assert len(people) == 1 and len(bad) == 1 and bad[0].reason.startswith("anonymous row")
    people, bad, notes = _read(tmp_path, "a.csv", data, skip_anonymous=True)
    assert len(people) == 1 and not bad and "a.csv: skipped 1 anonymous row(s) (no id, email, name or company)" in notes


def test_identities_export_lists_what_was_read_and_the_run_report_shows_the_decisions(tmp_path):
    (tmp_path / "template.csv").write_text(SF_UPSERT_TEMPLATE)
    (tmp_path / "marketing.csv").write_text(MARKETING)
    cfg_text = '[sources.sf]\nplugin = "crm_csv"\nfile = "template.csv"\n\n[sources.mkt]\nplugin = "crm_csv"\nfile = "marketing.csv"\n'
    (tmp_path / "crmsync.toml").write_text(cfg_text)
    res = subprocess.run([*crmsync_cmd(), "-c", str(tmp_path / "crmsync.toml"), "run", "--json"], capture_output=True, text=True)
    report = json.loads(res.stdout)
    notes = {s["name"]: s["notes"] for s in report["sources"]}
    assert any("key: external id column 'ORACLE_ID__C'" in n for n in notes["sf"]) and any("key: email column 'email'" in n for n in notes["mkt"])
    out = subprocess.run([*crmsync_cmd(), "-c", str(tmp_path / "crmsync.toml"), "identities", "export", "--state", "crm"], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["emails"][0] for r in rows) == ["ada@byron.example", "alan@turing.example", "mia@shop.example", "raj@shop.example"]
    assert {r["source"] for r in rows} == {"sf", "mkt"} and all(r["state"] == "unmatched" for r in rows)
    sf_only = subprocess.run([*crmsync_cmd(), "-c", str(tmp_path / "crmsync.toml"), "identities", "export", "--crm", "salesforce", "--format", "csv"], capture_output=True, text=True, check=True).stdout
    table = list(csv.DictReader(io.StringIO(sf_only)))
    assert sorted(r["crm_ids"] for r in table) == ["salesforce.ORACLE_ID__C=ORA-001", "salesforce.ORACLE_ID__C=ORA-002"]


def test_a_newer_email_keyed_export_marks_missing_contacts_removed(tmp_path):
    host = kit_host(sources=[ContactsSource])
    (tmp_path / "m.csv").write_text(MARKETING)
    cfg = kit_config(tmp_path, host, sources={"mkt": ("crm_csv", {"file": "m.csv"})})
    kit_run(cfg)
    (tmp_path / "m.csv").write_text("email,firstname\nmia@shop.example,Mia\n")
    kit_run(cfg)
    from crmsync.store import Store

    store = Store(cfg.store_url)
    try:
        people = {p.crm_ids["generic.email"]: p for p in store.identities.all()}
    finally:
        store.dispose()
    assert people["raj@shop.example"].removed and not people["mia@shop.example"].removed


@pytest.mark.parametrize("order", ["be", "le"])
def test_utf32_after_a_two_byte_mark_as_salesforce_data_loader_writes_it(tmp_path, order):
    # Data Loader's own test files: FE FF, then UTF-32 code units
    text = "Id,FirstName,LastName,Email\n003X1,Kim,Lee,kim@lee.example\n"
    data = b"\xfe\xff" + text.encode(f"utf-32-{order}")
    people, bad, notes = _read(tmp_path, "dl.csv", data)
    assert not bad and people[0].crm_ids == {"salesforce": "003X1"} and people[0].name == "Kim Lee"
    assert any(f"decoded as utf-32-{order} (after a 2-byte byte-order mark)" in n for n in notes)
