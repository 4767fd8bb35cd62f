"""Identity resolution and enrichment: canonical keys, the ladder, the review queue, clusters,
influence, triage; precision/recall and sentiment agreement on the shared corpus."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

import crmsync
from crmsync.cli import create_cli
from crmsync.host.config import validate_options
from crmsync.pipeline.resolve.matching import ContactIndex, Resolver, canonical_email, canonical_handle, canonical_url, identity_keys, is_role_address
from crmsync.pipeline.resolve.influence import influence
from crmsync.store import Store
from crmsync_enrich import TriageEnricher

from .conftest import crmsync_cmd
from .corpus_config import corpus_config, make_corpus, score


@pytest.mark.parametrize(
    ("raw", "canon"),
    [("Ann.Lee+shop@GMail.com", "annlee@gmail.com"), ("a.b@googlemail.com", "ab@gmail.com"), ("Jo.Doe+x@Example.ORG", "jo.doe@example.org"),
     ("user@bücher.example", "user@xn--bcher-kva.example"), ("not-an-address", None)],
)
def test_canonical_email(raw, canon):
    assert canonical_email(raw) == canon


def test_role_addresses_never_link():
    assert is_role_address("info@acme.example") and is_role_address("No-Reply@x.example") and not is_role_address("ann@x.example")
    index = ContactIndex([crmsync.Identity(name="Shop", emails=["info@shop.example"], crm_ids={"sf": "1"})])
    match, cands = Resolver(index).resolve(crmsync.Identity(emails=["info@shop.example"]))
    assert match is None and cands == []


@pytest.mark.parametrize(
    ("url", "canon"),
    [("https://www.Twitter.com/AnnLee/?utm_source=x&ref=y", "https://x.com/annlee"), ("http://m.x.com/annlee", "https://x.com/annlee"),
     ("https://Blog.Example/About/", "https://blog.example/About"), ("https://www.youtube.com/watch?v=abc&si=track", "https://youtube.com/watch?v=abc")],
)
def test_canonical_url(url, canon):
    assert canonical_url(url) == canon


def test_handles():
    assert canonical_handle("@AnnLee") == ("twitter", "annlee")
    assert canonical_handle("x:AnnLee") == ("twitter", "annlee")
    assert canonical_handle("twitter:https://twitter.com/AnnLee") == ("twitter", "annlee")
    assert canonical_handle("mastodon:@ann@fosstodon.org") == ("mastodon", "@ann@fosstodon.org")
    keys = identity_keys(crmsync.Identity(name="@annlee", handles=["shop:@AnnLee"], profile_urls=["https://x.com/AnnLee"]))
    assert ("handle", "twitter:annlee") in keys and ("url", "https://x.com/annlee") in keys


def _contacts():
    return ContactIndex([
        crmsync.Identity(name="Ann Lee", emails=["ann.lee@gmail.com"], crm_ids={"generic": "C1"}),
        crmsync.Identity(name="Bo Berg", emails=["bo@berg-tools.example"], handles=["twitter:boberg"], crm_ids={"generic": "C2"}),
        crmsync.Identity(name="Cy Twin", emails=["cy@a.example"], crm_ids={"generic": "C3"}),
        crmsync.Identity(name="Cy Twin", emails=["cy@b.example"], crm_ids={"generic": "C4"}),
        crmsync.Identity(name="Old Gone", emails=["old@x.example"], crm_ids={"generic": "C5"}, removed=True),
    ])


def test_ladder_methods_and_confidence():
    r = Resolver(_contacts())
    m, _ = r.resolve(crmsync.Identity(emails=["AnnLee+news@googlemail.com"]))
    assert (m.crm_ids, m.method, m.confidence) == ({"generic": "C1"}, "email_canonical", 0.97)
    m, _ = r.resolve(crmsync.Identity(emails=["ann.lee@gmail.com"]))
    assert m.method == "email_exact" and m.evidence == {"email": "ann.lee@gmail.com"}
    m, _ = r.resolve(crmsync.Identity(name="@BoBerg"))
    assert (m.crm_ids, m.method) == ({"generic": "C2"}, "handle")
    m, _ = r.resolve(crmsync.Identity(profile_urls=["https://www.twitter.com/boberg/"]))
    assert m.crm_ids == {"generic": "C2"}
    assert r.resolve(crmsync.Identity(emails=["old@x.example"])) == (None, [])  # removed contacts do not link


def test_a_name_alone_never_links_and_fuzzy_needs_a_second_signal():
    r = Resolver(_contacts())
    assert r.resolve(crmsync.Identity(name="Ann Lee", emails=["someone@else.example"])) == (None, [])
    match, cands = r.resolve(crmsync.Identity(name="Bo Bergh", emails=["b.berg@berg-tools.example"]))
    assert match is None and [(c.crm_ids["generic"], c.method) for c in cands] == [("C2", "fuzzy_name")]
    assert cands[0].evidence["second_signal"] == "same company email domain berg-tools.example" and cands[0].confidence < 0.9


def test_a_shared_platform_host_is_no_second_signal():
    """Two people with X profiles share x.com: no fuzzy candidate; a shared home page host is one."""
    contacts = ContactIndex([
        crmsync.Identity(name="Dana Smith", profile_urls=["https://x.com/dana_s"], crm_ids={"generic": "C1"}),
        crmsync.Identity(name="Dana Smith", profile_urls=["https://danasmith.example/about"], crm_ids={"generic": "C2"}),
    ])
    assert "x.com" not in contacts.by_host and "danasmith.example" in contacts.by_host
    r = Resolver(contacts)
    assert r.resolve(crmsync.Identity(name="Dana Smyth", profile_urls=["https://x.com/other_dana"])) == (None, [])
    _, cands = r.resolve(crmsync.Identity(name="Dana Smith", profile_urls=["https://danasmith.example/"]))
    assert [(c.crm_ids["generic"], c.evidence["second_signal"]) for c in cands] == [("C2", "same home URL host danasmith.example")]
    # the same author again: the kept result, as separate objects
    _, again = r.resolve(crmsync.Identity(name="Dana Smith", profile_urls=["https://danasmith.example/"]))
    assert again == cands and again[0] is not cands[0]


def test_the_index_takes_in_changed_contacts():
    ana = crmsync.Identity(name="Ana Lima", emails=["ana@lima-design.example"], handles=["twitter:analima"], crm_ids={"sf": "1"})
    bo = crmsync.Identity(name="Bo Berg", emails=["bo@berg-tools.example"], crm_ids={"sf": "2"})
    index = ContactIndex([ana, bo])
    assert index.contacts[ana.identity_id] == ana and len(index) == 2 and ana.identity_id in index.contacts
    r = Resolver(index)
    assert r.resolve(crmsync.Identity(emails=["ana@lima-design.example"]))[0].crm_ids == {"sf": "1"}
    # Ana's address changed in the CRM, Bo was removed from it
    r.refresh([ana.model_copy(update={"emails": ["ana@lima.example"]}), bo.model_copy(update={"removed": True})])
    assert r.resolve(crmsync.Identity(emails=["ana@lima-design.example"])) == (None, [])
    assert r.resolve(crmsync.Identity(emails=["ana@lima.example"]))[0].contact_id == ana.identity_id
    assert r.resolve(crmsync.Identity(handles=["twitter:analima"]))[0].method == "handle"
    assert r.resolve(crmsync.Identity(emails=["bo@berg-tools.example"])) == (None, [])
    assert len(index) == 1 and "lima-design.example" not in index.by_domain and "berg-tools.example" not in index.by_domain


_PEOPLE = [
    crmsync.Identity(name="Ann Lee", emails=["ann.lee@gmail.com"], crm_ids={"generic": "C1"}),
    crmsync.Identity(name="Bo Berg", emails=["bo@berg-tools.example"], handles=["twitter:boberg"], crm_ids={"generic": "C2"}),
    crmsync.Identity(name="Cy Twin", emails=["cy@a.example"], crm_ids={"generic": "C3"}),
    crmsync.Identity(name="Cy Twin", emails=["cy@b.example", "cy@a.example"], crm_ids={"generic": "C4"}),
    crmsync.Identity(name="Old Gone", emails=["old@x.example"], crm_ids={"generic": "C5"}, removed=True),
    crmsync.Identity(name="Dana Smith", profile_urls=["https://danasmith.example/about", "https://x.com/dana_s"], crm_ids={"generic": "C6"}),
    crmsync.Identity(name="Long Url", profile_urls=["https://long.example/" + "p" * 600], crm_ids={"generic": "C7"}),
    crmsync.Identity(name="No Keys", crm_ids={"generic": "C8"}),
    crmsync.Identity(name="Not A Contact", emails=["nac@berg-tools.example"]),
]
_AUTHORS = [
    crmsync.Identity(emails=["AnnLee+news@googlemail.com"]), crmsync.Identity(emails=["ann.lee@gmail.com"]), crmsync.Identity(name="@BoBerg"),
    crmsync.Identity(profile_urls=["https://www.twitter.com/boberg/"]), crmsync.Identity(emails=["old@x.example"]), crmsync.Identity(emails=["cy@a.example"]),
    crmsync.Identity(name="Bo Bergh", emails=["b.berg@berg-tools.example"]), crmsync.Identity(name="Dana Smith", profile_urls=["https://danasmith.example/"]),
    crmsync.Identity(name="Dana Smyth", profile_urls=["https://x.com/other_dana"]), crmsync.Identity(profile_urls=["https://long.example/" + "p" * 600]),
    crmsync.Identity(emails=["info@berg-tools.example"]), crmsync.Identity(name="Ann Lee", emails=["someone@else.example"]),
    crmsync.Identity(name="Not A Contact", emails=["nac@berg-tools.example"]),
]


def _stored_index(tmp_path, people):
    from crmsync.pipeline.resolve.stored import StoredContactIndex, sync

    store = Store(f"sqlite:///{tmp_path / 'idx.db'}")
    store.interactions.write_batch("crm", [], identities_=people)
    assert sync(store.identities) == sum(1 for p in people if p.crm_ids)
    assert sync(store.identities) == 0, "in step: nothing to do"
    return store, StoredContactIndex(store.identities)


def test_the_index_in_the_store_answers_as_the_index_in_memory(tmp_path):
    """The run keeps its contact index in the store (memory that does not grow with the
    CRM): every rung of the ladder must answer as the in-memory index does."""
    store, stored = _stored_index(tmp_path, _PEOPLE)
    try:
        memory = ContactIndex(_PEOPLE)
        assert len(stored) == len(memory) == 7
        assert sorted(stored.contacts) == sorted(memory.contacts) and dict(stored.contacts.items()) == dict(memory.contacts.items())
        assert _PEOPLE[0].identity_id in stored.contacts and _PEOPLE[4].identity_id not in stored.contacts and _PEOPLE[8].identity_id not in stored.contacts
        fast, slow = Resolver(stored), Resolver(memory)
        stored.prefetch(_AUTHORS[:5])  # some looked up in a batch, the others one by one
        for author in _AUTHORS:
            assert fast.resolve(author) == slow.resolve(author), author
        assert fast.resolve(_AUTHORS[6])[1][0].method == "fuzzy_name" and fast.resolve(_AUTHORS[9])[0].crm_ids == {"generic": "C7"}
    finally:
        store.dispose()


def test_a_batch_prefetch_looks_up_the_fuzzy_blocks_too(tmp_path):
    """A batch's authors (given as a generator, as the runner gives them) are looked up
    at once: keys, contacts and the blocks the fuzzy rung reads, one query per kind;
    resolving them afterwards asks the store for no block."""
    store, stored = _stored_index(tmp_path, _PEOPLE)
    try:
        asked: list[tuple[str, list[str]]] = []
        real = store.identities.contact_names_by
        store.identities.contact_names_by = lambda kind, keys: asked.append((kind, sorted(keys))) or real(kind, keys)
        stored.prefetch(a for a in _AUTHORS)
        assert [kind for kind, _ in asked] == ["domain", "host"]
        assert "berg-tools.example" in asked[0][1] and "danasmith.example" in asked[1][1]
        asked.clear()
        slow = Resolver(ContactIndex(_PEOPLE))
        fast = Resolver(stored)
        for author in _AUTHORS:
            assert fast.resolve(author) == slow.resolve(author), author
        assert asked == []
    finally:
        store.dispose()


def test_the_index_in_the_store_follows_changed_contacts(tmp_path):
    ana = crmsync.Identity(name="Ana Lima", emails=["ana@lima-design.example"], handles=["twitter:analima"], crm_ids={"sf": "1"})
    bo = crmsync.Identity(name="Bo Berg", emails=["bo@berg-tools.example"], crm_ids={"sf": "2"})
    store, index = _stored_index(tmp_path, [ana, bo])
    try:
        r = Resolver(index)
        assert r.resolve(crmsync.Identity(emails=["ana@lima-design.example"]))[0].crm_ids == {"sf": "1"}
        # the CRM export changes: Ana's address, Bo removed; a new contact comes
        cy = crmsync.Identity(name="Cy", emails=["cy@c.example"], crm_ids={"sf": "3"})
        store.interactions.write_batch("crm", [], identities_=[ana.model_copy(update={"emails": ["ana@lima.example"]}), bo.model_copy(update={"removed": True}), cy])
        assert store.identities.count_stale_contacts() == 3
        r.refresh([])
        assert store.identities.count_stale_contacts() == 0
        assert r.resolve(crmsync.Identity(emails=["ana@lima-design.example"]))[0].contact_id == ana.identity_id, "merged: both addresses are hers"
        assert r.resolve(crmsync.Identity(emails=["ana@lima.example"]))[0].contact_id == ana.identity_id
        assert r.resolve(crmsync.Identity(emails=["bo@berg-tools.example"])) == (None, [])
        assert r.resolve(crmsync.Identity(emails=["cy@c.example"]))[0].crm_ids == {"sf": "3"}
        assert len(index) == 2 and "berg-tools.example" not in index.by_domain
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM contact_index WHERE contact_id = ?", (bo.identity_id,)).scalar() == 0
    finally:
        store.dispose()


def test_a_small_crm_is_indexed_in_memory_a_large_one_in_the_store(tmp_path, monkeypatch):
    from crmsync.pipeline import resolve
    from crmsync.pipeline.report import SourceReport
    from crmsync.pipeline.resolve.stored import StoredContactIndex

    store = Store(f"sqlite:///{tmp_path / 'size.db'}")
    try:
        store.interactions.write_batch("crm", [], identities_=_PEOPLE)
        recs = [crmsync.Interaction.create(source="m", channel="email", native_id=f"<{i}@x>", kind="message", author=a) for i, a in enumerate(_AUTHORS)]
        linked = {}
        for limit in (100, 6):  # 7 contacts: in memory, then in the store
            monkeypatch.setattr(resolve, "IN_MEMORY_UP_TO", limit)
            stage = resolve.Resolution(store.identities, store.interactions, resolve.Settings(), lambda: [])
            stage.prepare({}, build_now=True)
            assert isinstance(stage.resolver.index, StoredContactIndex) is (limit == 6)
            out = stage.resolve([r.model_copy(deep=True) for r in recs], SourceReport("m", "email"), {}, write=False)
            linked[limit] = [r.author.crm_ids for r in out]
        assert linked[100] == linked[6] and {"generic": "C1"} in linked[6]
    finally:
        store.dispose()


def test_a_dry_run_reads_the_contacts_without_bringing_the_index_in_step(tmp_path, monkeypatch):
    from crmsync.pipeline import resolve
    from crmsync.pipeline.report import SourceReport
    from crmsync.pipeline.resolve import Resolution, Settings
    from crmsync.pipeline.resolve.stored import StoredContactIndex

    monkeypatch.setattr(resolve, "IN_MEMORY_UP_TO", 0)  # the index in the store, whatever the CRM's size

    store = Store(f"sqlite:///{tmp_path / 'dry.db'}")
    try:
        store.interactions.write_batch("crm", [], identities_=_PEOPLE[:2])
        rec = crmsync.Interaction.create(source="m", channel="email", native_id="<1@x>", kind="message", author=crmsync.Identity(emails=["ann.lee@gmail.com"]))
        for dry in (True, False):
            stage = Resolution(store.identities, store.interactions, Settings(), lambda: [])
            stage.prepare({}, build_now=True, dry_run=dry)
            out = stage.resolve([rec], SourceReport("m", "email"), {}, write=not dry)
            assert out[0].author.crm_ids == {"generic": "C1"}
            # the dry run wrote nothing, not even the index; the real run brought it in step
            assert store.identities.count_stale_contacts() == (2 if dry else 0)
            assert isinstance(stage.resolver.index, StoredContactIndex) is not dry
    finally:
        store.dispose()


def test_review_queue_accept_relinks_and_redelivers(tmp_path):
    (tmp_path / "contacts.csv").write_text("contact_id,first_name,last_name,email\nC2,Bo,Berg,bo@berg-tools.example\n")
    (tmp_path / "m.eml").write_text("From: Bo Bergh <b.berg@berg-tools.example>\nMessage-ID: <1@berg>\nSubject: Hi\n\nAny news?\n")
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n[sources.mail]\nplugin = "email"\npaths = ["m.eml"]\n[sinks.out]\nplugin = "crm_csv"\noutput_dir = "out"\n')
    cli = create_cli()
    r = CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"])
    report = json.loads(r.stdout)
    assert report["identity"]["candidates"] == 1 and report["identity"]["linked"] == 0
    queue = json.loads(CliRunner().invoke(cli, ["-c", str(cfg), "identities", "review", "--json"]).stdout)
    assert len(queue) == 1 and queue[0]["method"] == "fuzzy_name" and queue[0]["evidence"]["second_signal"].startswith("same company")
    text = CliRunner().invoke(cli, ["-c", str(cfg), "status"]).output
    assert "identity review queue: 1 candidate(s)" in text
    assert CliRunner().invoke(cli, ["-c", str(cfg), "identities", "accept", str(queue[0]["id"])]).exit_code == 0
    report = json.loads(CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"]).stdout)
    assert report["identity"]["relinked"] == 1 and report["sinks"][0]["updated"] == 1
    from crmsync_crm_csv import read_import_files

    (row,) = read_import_files(tmp_path / "out")
    assert row["author_crm_id"] == "C2" and row["version"] == "2"
    again = json.loads(CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"]).stdout)
    assert again["identity"]["relinked"] == 0 and again["sinks"][0]["delivered"] == 0
    assert CliRunner().invoke(cli, ["-c", str(cfg), "identities", "reject", "999"]).exit_code == 2


def test_later_runs_build_the_contact_index_only_when_a_batch_needs_it(tmp_path, monkeypatch):
    (tmp_path / "contacts.csv").write_text("contact_id,first_name,last_name,email\nC2,Bo,Berg,bo@berg-tools.example\n")
    for d in ("inbox", "notes"):
        (tmp_path / d).mkdir()
    (tmp_path / "inbox" / "1.eml").write_text("From: Stranger <s@elsewhere.example>\nMessage-ID: <1@s>\nSubject: Hi\n\nHello\n")
    (tmp_path / "notes" / "1.eml").write_text("From: Other <o@elsewhere.example>\nMessage-ID: <1@o>\nSubject: Hi\n\nHello\n")
    cfg = tmp_path / "crmsync.toml"
    # two mail sources: each in a worker process of its own
    cfg.write_text('[run]\nworkers = "process"\n[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n'
                   '[sources.inbox]\nplugin = "email"\npaths = ["inbox"]\n[sources.notes]\nplugin = "email"\npaths = ["notes"]\n')
    cli = create_cli()

    def run():
        r = CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    assert run()["identity"]["linked"] == 0
    # nothing new: the contacts are never read (forked workers inherit the patch)
    from crmsync.store.identities import Identities

    real = Identities.contacts
    monkeypatch.setattr(Identities, "contacts", lambda self: (_ for _ in ()).throw(AssertionError("contacts read")))
    quiet = run()
    assert quiet["identity"]["contacts"] == 1 and all(s["new"] == 0 for s in quiet["sources"])
    monkeypatch.setattr(Identities, "contacts", real)
    # a new mail from the contact: its worker builds the index and links it
    (tmp_path / "inbox" / "2.eml").write_text("From: Bo Berg <bo@berg-tools.example>\nMessage-ID: <2@b>\nSubject: Order\n\nWhere is it?\n")
    report = run()
    assert report["identity"]["linked"] == 1 and [s["new"] for s in report["sources"] if s["name"] == "inbox"] == [1]
    store = Store(f"sqlite:///{tmp_path / '.crmsync' / 'crmsync.db'}")
    try:
        linked = {r.native_id: r.author.crm_ids for r, _ in store.interactions.iter()}
    finally:
        store.dispose()
    assert linked["<2@b>"] == {"generic": "C2"} and linked["<1@s>"] == {}


def _linked(tmp_path) -> dict[str, dict[str, str]]:
    store = Store(f"sqlite:///{tmp_path / '.crmsync' / 'crmsync.db'}")
    try:
        return {r.native_id: r.author.crm_ids for r, _ in store.interactions.iter()}
    finally:
        store.dispose()


def test_a_key_an_author_brings_to_a_contact_links_earlier_records(tmp_path):
    # Yan writes from home first (unknown), then from work with the home address as
    # Reply-To: the work mail links to the contact, which so gains the home address,
    # and the relink links the home mail too; a stranger stays unlinked
    (tmp_path / "contacts.csv").write_text("contact_id,first_name,last_name,email\nC7,Yan,Lee,yan@corp.example\n")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "1.eml").write_text("From: Yan <yan.home@home.example>\nMessage-ID: <1@y>\nSubject: Hi\n\nQuestion\n")
    (tmp_path / "mail" / "2.eml").write_text("From: Yan Lee <yan@corp.example>\nReply-To: yan.home@home.example\nMessage-ID: <2@y>\nSubject: Re\n\nMore\n")
    (tmp_path / "mail" / "3.eml").write_text("From: Stranger <s@elsewhere.example>\nMessage-ID: <3@s>\nSubject: Hi\n\nHello\n")
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n[sources.mail]\nplugin = "email"\npaths = ["mail"]\n')
    report = json.loads(CliRunner().invoke(create_cli(), ["-c", str(cfg), "run", "--json"]).stdout)
    assert report["identity"]["linked"] == 1 and report["identity"]["relinked"] == 1, report["identity"]
    assert _linked(tmp_path) == {"<1@y>": {"generic": "C7"}, "<2@y>": {"generic": "C7"}, "<3@s>": {}}


def test_a_contact_added_to_the_crm_later_links_earlier_records(tmp_path):
    (tmp_path / "contacts.csv").write_text("contact_id,first_name,last_name,email\nC1,Ann,Ash,ann@ash.example\n")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "1.eml").write_text("From: Dana <dana@people.example>\nMessage-ID: <1@d>\nSubject: Hi\n\nQuestion\n")
    (tmp_path / "mail" / "2.eml").write_text("From: Erin <erin@people.example>\nMessage-ID: <2@e>\nSubject: Hi\n\nHello\n")
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.crm]\nplugin = "crm_csv"\nfile = "contacts.csv"\n[sources.mail]\nplugin = "email"\npaths = ["mail"]\n')
    cli = create_cli()
    first = json.loads(CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"]).stdout)
    assert first["identity"]["linked"] == 0 and _linked(tmp_path) == {"<1@d>": {}, "<2@e>": {}}
    # the CRM export gains Dana: the next run links her earlier mail, and only hers
    (tmp_path / "contacts.csv").write_text("contact_id,first_name,last_name,email\nC1,Ann,Ash,ann@ash.example\nC9,Dana,Dell,Dana@People.example\n")
    later = json.loads(CliRunner().invoke(cli, ["-c", str(cfg), "run", "--json"]).stdout)
    assert later["identity"]["relinked"] == 1, later["identity"]
    assert _linked(tmp_path) == {"<1@d>": {"generic": "C9"}, "<2@e>": {}}


def test_one_person_under_several_addresses_is_one_identity(tmp_path):
    mails = [
        "From: Dee <dee@home.example>\nReply-To: dee.work@corp.example\nMessage-ID: <1@d>\n\none\n",
        "From: Dee <dee.work@corp.example>\nMessage-ID: <2@d>\n\ntwo\n",
    ]
    for n, m in enumerate(mails):
        (tmp_path / f"{n}.eml").write_text(m)
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.mail]\nplugin = "email"\npaths = ["."]\n')
    CliRunner().invoke(create_cli(), ["-c", str(cfg), "run"])
    store = Store(f"sqlite:///{tmp_path / '.crmsync' / 'crmsync.db'}")
    try:
        authors = {r.author.identity_id for r, _ in store.interactions.iter()}
    finally:
        store.dispose()
    assert len(authors) == 1


def test_influence_flags():
    assert influence(1, 0, 0, 0.9).flags == []
    big = influence(12, 400, 10, 0.6)
    assert big.flags == ["influencer", "ambassador"] and big.score > 5
    assert influence(12, 400, 10, -0.7).flags == ["influencer", "detractor"]
    assert influence(12, 400, 10, -0.7, {"influencer_score": 100}).flags == []


def _triage(options=None, **fields):
    opts = validate_options(TriageEnricher.config_schema, {"support_addresses": ["support@acme.example"], **(options or {})}, where="t")
    rec = crmsync.Interaction.create(source="s", channel="feed", native_id="https://t.example/1", kind="post", published=datetime(2026, 11, 1, tzinfo=UTC), **fields)
    return TriageEnricher("triage", opts).enrich(rec)


def test_triage_rules():
    legal = _triage(body_text="I will talk to my lawyer about this.")
    assert (legal.needs_response, legal.priority, legal.due_at.isoformat()) == (True, "urgent", "2026-11-01T04:00:00+00:00")
    churn = _triage(body_text="Please cancel my order and refund me")
    assert churn.priority == "high" and churn.extra["triage"] == ["churn"]
    low = _triage(body_text="meh", rating=crmsync.Rating(value=1))
    assert low.priority == "normal" and "low rating" in low.extra["triage"]
    q = _triage(body_text="How do I pair the rocket?")
    assert q.needs_response and q.priority == "normal"
    support = _triage(body_text="hello", recipients=["Support@acme.example"])
    assert support.extra["triage"] == ["mail to support"]
    fine = _triage(body_text="Lovely product.")
    assert fine.needs_response is False and fine.due_at is None


def test_triage_patterns_ignore_case():
    # the default (lower-case) patterns run over the lower-cased text
    shout = _triage(body_text="MY LAWYER WILL CALL. Kündigung! REFUND NOW")
    assert shout.extra["triage"] == ["legal", "churn"] and shout.priority == "urgent"
    # a pattern with upper case in it (a class, an escape) keeps re.IGNORECASE
    custom = {"legal_pattern": r"\bGDPR\S*|[A-Z]{2}-\d{3}", "churn_pattern": r"\bCANCEL\b", "question_pattern": r"\bWHY\b"}
    hit = _triage(custom, body_text="my gdpr-request ab-123, why? i cancel")
    assert hit.extra["triage"] == ["legal", "churn", "question"]
    miss = _triage(custom, body_text="cancellation of the lawyer")
    assert miss.needs_response is False


# measured against the corpus truth ------------------------------------------------
@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    c = make_corpus(tmp_path_factory.mktemp("idcorpus") / "c", 10000, 3)
    (c / "crmsync.toml").write_text(corpus_config(c, sink=False))
    res = subprocess.run([*crmsync_cmd(), "-c", str(c / "crmsync.toml"), "run", "--json", "--no-progress"], capture_output=True, text=True)
    report = json.loads(res.stdout)
    store = Store(f"sqlite:///{c / 'state' / 'crmsync.db'}")
    try:
        recs = {r.native_id: r for r, _ in store.interactions.iter()}
        queue = store.interactions.response_queue(now=datetime(2030, 1, 1, tzinfo=UTC))
        people = list(store.identities.all())
    finally:
        store.dispose()
    truth = json.loads((c / "crm" / "truth.json").read_text())
    return report, recs, truth, queue, people


def test_contact_matching_precision_and_recall(corpus_run):
    report, recs, truth, _, _ = corpus_run
    s = score(recs, truth["interactions"])
    print(f"contact matching on 10k: precision {s['precision']:.4f} recall {s['recall']:.4f} (tp {s['tp']}, fp {s['fp']}, fn {s['fn']})")
    assert s["missing"] == 0 and s["precision"] >= 0.99 and s["recall"] >= 0.95
    decoys = [i for i in truth["interactions"] if i.get("decoy")]
    assert decoys and all(not (recs[i["key"]].author and recs[i["key"]].author.crm_ids) for i in decoys)


def test_sentiment_agreement(corpus_run):
    _, recs, truth, _, _ = corpus_run
    s = score(recs, truth["interactions"])
    print(f"sentiment agreement on 10k: {s['sentiment_agreement']:.4f} of {s['sentiment_labeled']}")
    assert s["sentiment_labeled"] > 0 and s["sentiment_agreement"] >= 0.9


def test_language_and_mentions(corpus_run):
    _, recs, truth, _, _ = corpus_run
    langs = [(recs[i["key"]].extra.get("detected_language") or {}).get("language") == i["lang"] for i in truth["interactions"] if (recs[i["key"]].extra.get("detected_language"))]
    assert sum(langs) / len(langs) >= 0.95
    named = [i for i in truth["interactions"] if i["products"]]
    hits = sum(1 for i in named if set(i["products"]) <= set(recs[i["key"]].mentions))
    assert hits / len(named) >= 0.95


def test_queue_and_influence_on_the_corpus(corpus_run):
    report, _, _, queue, people = corpus_run
    assert queue["overdue"] > 0 and queue["next"] and all(n["overdue"] for n in queue["next"])
    assert report["identity"]["influencers"] >= 1
    assert any("influencer" in p.flags for p in people)
