"""plugins/email: MIME decoding, filters, threads, replies; mbox/Maildir vs a real Dovecot IMAP server."""

from __future__ import annotations

import json
import mailbox
import os
import socket
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

import crmsync
from crmsync.contract.base import Context
from crmsync.host.config import Secret, validate_options
from crmsync.store import Store
from crmsync.testing import kit_config, kit_host, kit_run
from crmsync_email import EmailSource
from crmsync_email.parse import parse_message

from .corpus_config import make_corpus


def read(tmp: Path, **options) -> list:
    opts = validate_options(EmailSource.config_schema, options, where="test")
    if "imap" in opts:
        opts["imap"]["password"] = Secret(opts["imap"]["password"], "test")
    src = EmailSource("mail", opts, Context(config_dir=tmp))
    return list(src.read(None)), src


def run_mail(tmp: Path, **options):
    host = kit_host(sources=[EmailSource])
    if "imap" in options:
        var = f"CRMSYNC_TEST_PW_{options['imap']['username'].upper()}"
        os.environ[var] = options["imap"]["password"]
        options = {**options, "imap": {**options["imap"], "password": f"env:{var}"}}
    cfg = kit_config(tmp, host, sources={"mail": ("email", options)})
    report = kit_run(cfg)
    store = Store(cfg.store_url)
    try:
        recs = [r for r, _ in store.interactions.iter()]
        q = store.quarantine.items()
    finally:
        store.dispose()
    return report, recs, q


# MIME ----------------------------------------------------------------------------
RAW_2047 = (
    b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <joerg@mueller.example>\r\n"
    b"To: support@acme.example\r\nSubject: =?utf-8?b?w4RwZmVs?= =?utf-8?q?_und_Birnen?=\r\n"
    b"Message-ID: <a1@mueller.example>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=FC=DFe =96 das Ger=E4t ist kaputt.\r\n"
)


def test_rfc2047_and_charsets():
    m = parse_message(RAW_2047)
    assert m.from_name == "Jörg Müller" and m.from_addr == "joerg@mueller.example"
    assert m.subject == "Äpfel und Birnen"
    assert m.text.strip() == "Grüße – das Gerät ist kaputt."
    assert m.date.isoformat() == "2026-11-02T10:00:00+01:00"


def test_unknown_charset_and_bad_bytes_never_crash():
    raw = b"From: a@b.example\r\nMessage-ID: <x@b.example>\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\nab\xff\xfecd\r\n"
    assert "ab" in parse_message(raw).text
    raw = b"From: a@b.example\r\nMessage-ID: <y@b.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok \xff\xfe end\r\n"
    assert parse_message(raw).text.startswith("ok \ufffd\ufffd end")


def test_multipart_alternative_nested_forward_and_attachments():
    inner = EmailMessage()
    inner["From"] = "orig@x.example"
    inner["Subject"] = "original"
    inner.set_content("forwarded body")
    msg = EmailMessage()
    msg["From"] = "Ann <ann@x.example>"
    msg["Message-ID"] = "<m@x.example>"
    msg.set_content("plain version")
    msg.add_alternative("<p>html <b>version</b></p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="Rechnung März.pdf")
    msg.add_attachment(inner)
    m = parse_message(msg.as_bytes())
    assert m.text.strip() == "plain version" and "<b>version</b>" in m.html
    assert [(a.filename, a.media_type, a.size) for a in m.attachments] == [("Rechnung März.pdf", "application/pdf", 13)]
    html_only = EmailMessage()
    html_only["From"] = "b@x.example"
    html_only.set_content("<p>Only <i>html</i></p><script>bad()</script>", subtype="html")
    m = parse_message(html_only.as_bytes())
    assert m.text is None and m.html


def test_filters_dmarc_and_reply_separation(tmp_path):
    def mail(frm: str, mid: str, body: str, **headers: str) -> bytes:
        m = EmailMessage()
        m["From"] = frm
        m["Message-ID"] = mid
        for k, v in headers.items():
            m[k.replace("_", "-")] = v
        m.set_content(body)
        return m.as_bytes()

    box = mailbox.mbox(tmp_path / "in.mbox")
    for raw in [
        mail("Ann <ann@customer.example>", "<1@c.example>", "Thanks, it works!\n\nBest,\nAnn\n\nOn Mon, 2 Nov 2026 at 10:00, Support <s@acme.example> wrote:\n> Try again.\n> Regards",
             Authentication_Results="mx.acme.example; spf=pass smtp.mailfrom=customer.example; dmarc=pass (p=reject) header.from=customer.example",
             In_Reply_To="<0@acme.example>", References="<root@c.example> <0@acme.example>"),
        mail("Support <help@acme.example>", "<2@acme.example>", "our own reply"),
        mail("Out Of Office <bo@customer.example>", "<3@c.example>", "I am away", Auto_Submitted="auto-replied"),
        mail("MAILER-DAEMON@mx.example", "<4@mx.example>", "delivery failed"),
        mail("News <news@list.example>", "<5@list.example>", "bulk", Precedence="bulk"),
        mail("Cy <cy@customer.example>", "<6@c.example>", "Reply-To from a list", Reply_To="list@lists.example", List_Id="<l.lists.example>"),
        mail("Di <di@customer.example>", "<7@c.example>", "personal reply-to", Reply_To="di.private@home.example"),
    ]:
        box.add(raw)
    box.flush()
    items, src = read(tmp_path, paths=["in.mbox"], own_domains=["acme.example"])
    recs = {r.native_id: r for r in items if isinstance(r, crmsync.Interaction)}
    assert set(recs) == {"<1@c.example>", "<6@c.example>", "<7@c.example>"}
    ann = recs["<1@c.example>"]
    assert ann.body_text == "Thanks, it works!" and "Try again" in ann.extra["full_text"]
    assert ann.author.verified_emails == ["ann@customer.example"]
    assert ann.in_reply_to == crmsync.make_interaction_id("email", "<0@acme.example>")
    assert ann.thread_id == crmsync.make_interaction_id("email", "<root@c.example>")
    assert recs["<6@c.example>"].author.emails == ["cy@customer.example"]
    assert recs["<7@c.example>"].author.emails == ["di@customer.example", "di.private@home.example"]
    assert src.skipped == {"from own domains": 1, "auto-replies/bounces": 2, "from role addresses": 1}


def test_malformed_messages_are_quarantined_with_offset(tmp_path):
    (tmp_path / "bad.mbox").write_bytes(
        b"From x@y Mon Nov  2 10:00:00 2026\n\x00\x01\x02 binary garbage\n\n"
        b"From x@y Mon Nov  2 10:00:00 2026\nSubject: no sender\nMessage-ID: <ns@x.example>\n\nbody\n\n"
        b"From x@y Mon Nov  2 10:00:00 2026\nFrom: ok@x.example\nMessage-ID: <ok@x.example>\n\nfine\n"
    )
    report, recs, q = run_mail(tmp_path, paths=["bad.mbox"])
    assert [r.native_id for r in recs] == ["<ok@x.example>"]
    assert [(i.ref.rsplit(":", 1)[1], i.reason.split(":")[0]) for i in q] == [("offset 0", "malformed message"), ("offset 54", "malformed message")]
    assert "no From header" in q[1].reason and report.exit_code == 1


def test_threads_are_stable_in_any_order(tmp_path):
    def m(mid, refs=None, irt=None):
        e = EmailMessage()
        e["From"] = "a@x.example"
        e["Message-ID"] = mid
        if refs:
            e["References"] = refs
        if irt:
            e["In-Reply-To"] = irt
        e.set_content("x")
        return e.as_bytes()

    msgs = [m("<r@x>"), m("<c1@x>", "<r@x>", "<r@x>"), m("<c2@x>", "<r@x> <c1@x>", "<c1@x>")]
    for order in (msgs, list(reversed(msgs))):
        d = tmp_path / str(id(order))
        d.mkdir()
        for n, raw in enumerate(order):
            (d / f"{n}.eml").write_bytes(raw)
        items, _ = read(d, paths=["."])
        threads = {r.thread_id for r in items if isinstance(r, crmsync.Interaction)}
        assert threads == {crmsync.make_interaction_id("email", "<r@x>")}


# the shared corpus: mbox, Maildir and IMAP ---------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("mailcorpus") / "c", 1500, 11)


def _truth_mail(corpus: Path) -> dict[str, dict]:
    truth = json.loads((corpus / "crm" / "truth.json").read_text())
    return {i["key"]: i for i in truth["interactions"] if i["source"] in ("mbox", "maildir")}


def _check_against_truth(recs: list, expected: dict[str, dict]) -> None:
    by = {r.native_id: r for r in recs}
    assert len(recs) == len(by) == len(expected) and set(by) == set(expected)
    for key, item in expected.items():
        rec = by[key]
        assert rec.thread_id == crmsync.make_interaction_id("email", item["thread"]), key
        if item.get("parent"):
            assert rec.in_reply_to == crmsync.make_interaction_id("email", item["parent"])
        assert rec.published.isoformat().replace("+00:00", "Z") == item["published"]
        assert len(rec.attachments) == item.get("attachments", 0), key
        assert all(a.sha256 and a.size is not None and a.media_type for a in rec.attachments)


def test_mbox_and_maildir_give_the_truth(tmp_path, corpus):
    report, recs, q = run_mail(tmp_path, paths=[str(corpus / "mail" / "archive.mbox"), str(corpus / "mail" / "Maildir")])
    assert report.exit_code == 0 and not q, report.as_dict()
    _check_against_truth(recs, _truth_mail(corpus))


def _imap_config(dovecot, user: str, **extra) -> dict:
    return {"host": dovecot.host, "port": dovecot.tls_port, "security": "tls", "username": user, "password": dovecot.password(user), "ca_file": dovecot.cafile, **extra}


def _append(dovecot, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
    from imapclient import IMAPClient

    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(user, dovecot.password(user))
        if folder != "INBOX" and not c.folder_exists(folder):
            c.create_folder(folder)
        for raw in messages:
            c.append(folder, raw)


def _corpus_messages(corpus: Path) -> tuple[list[bytes], list[bytes]]:
    mbox = [mailbox.mbox(corpus / "mail" / "archive.mbox").get_bytes(k) for k in mailbox.mbox(corpus / "mail" / "archive.mbox").keys()]
    md = mailbox.Maildir(corpus / "mail" / "Maildir", factory=None)
    maildir = [md.get_bytes(k) for k in sorted(md.keys())]
    return mbox, maildir


def test_imap_incremental_and_same_as_files(tmp_path, corpus, dovecot):
    user = dovecot.users.pop()
    mbox, maildir = _corpus_messages(corpus)
    _append(dovecot, user, mbox)
    imap = _imap_config(dovecot, user, batch_size=50)
    report, recs, _ = run_mail(tmp_path, imap=imap)
    assert report.exit_code == 0, report.as_dict()
    assert len(recs) == len({r.native_id for r in recs}) == len({k for k, i in _truth_mail(corpus).items() if "mail/archive.mbox" in i["files"]})
    _append(dovecot, user, maildir)
    report2, recs2, _ = run_mail(tmp_path, imap=imap)
    s = report2.sources[0]
    assert s.read == len(maildir) and s.new == len(recs2) - len(recs)
    _check_against_truth(recs2, _truth_mail(corpus))
    files = run_mail(tmp_path / "files" if (tmp_path / "files").mkdir() is None else tmp_path, paths=[str(corpus / "mail" / "archive.mbox"), str(corpus / "mail" / "Maildir")])[1]
    assert sorted((r.interaction_id, r.content_hash) for r in files) == sorted((r.interaction_id, r.content_hash) for r in recs2)
    report3, _, _ = run_mail(tmp_path, imap=imap)
    assert report3.sources[0].read == 0
    # read-only: nothing was marked \\Seen
    from imapclient import IMAPClient

    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(user, dovecot.password(user))
        c.select_folder("INBOX", readonly=True)
        assert c.search(["SEEN"]) == []


def test_imap_uidvalidity_reset(tmp_path, corpus, dovecot):
    from imapclient import IMAPClient

    user = dovecot.users.pop()
    mbox, _ = _corpus_messages(corpus)
    _append(dovecot, user, mbox[:10], folder="Support")
    imap = _imap_config(dovecot, user, folders=["Support"])
    assert run_mail(tmp_path, imap=imap)[0].sources[0].new == 10
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(user, dovecot.password(user))
        c.delete_folder("Support")
    _append(dovecot, user, mbox[:12], folder="Support")  # new UIDVALIDITY, same messages + 2
    report, recs, _ = run_mail(tmp_path, imap=imap)
    s = report.sources[0]
    assert (s.read, s.new, s.unchanged) == (12, 2, 10) and len(recs) == 12
    assert any("UIDVALIDITY changed" in n for n in s.notes)


def test_imap_starttls_and_certificate_verification(tmp_path, dovecot):
    user = dovecot.users.pop()
    m = EmailMessage()
    m["From"] = "z@x.example"
    m["Message-ID"] = "<tls@x.example>"
    m.set_content("hi")
    _append(dovecot, user, [m.as_bytes()])
    report, recs, _ = run_mail(tmp_path, imap={**_imap_config(dovecot, user), "port": dovecot.port, "security": "starttls"})
    assert report.exit_code == 0 and len(recs) == 1
    bad = {k: v for k, v in _imap_config(dovecot, user).items() if k != "ca_file"}
    report, _, _ = run_mail(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, imap=bad)
    assert report.sources[0].status == "failed" and "TLS error" in report.sources[0].errors[0] and "CERTIFICATE_VERIFY_FAILED" in report.sources[0].errors[0]
    wrong = {**_imap_config(dovecot, user), "password": "nope"}
    report, _, _ = run_mail(tmp_path / "y" if (tmp_path / "y").mkdir() is None else tmp_path, imap=wrong)
    assert "login failed" in report.sources[0].errors[0] and "nope" not in json.dumps(report.as_dict())


class _DroppingProxy:
    """A TCP proxy that cuts the connection once, after the server has sent `cut_after` bytes."""

    def __init__(self, upstream: tuple[str, int], cut_after: int) -> None:
        self.upstream, self.cut_after, self.cuts = upstream, cut_after, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            cut = self.cuts == 0
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.cut_after if cut else None), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if limit is not None and sent > limit:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_imap_connection_killed_mid_fetch(tmp_path, corpus, dovecot):
    user = dovecot.users.pop()
    mbox, _ = _corpus_messages(corpus)
    _append(dovecot, user, mbox)
    proxy = _DroppingProxy((dovecot.host, dovecot.port), cut_after=200_000)
    try:
        report, recs, _ = run_mail(tmp_path, imap={**_imap_config(dovecot, user), "port": proxy.port, "security": "starttls", "batch_size": 20})
    finally:
        proxy.close()
    s = report.sources[0]
    assert proxy.cuts == 1 and s.restarts == 1 and s.status == "ok", report.as_dict()
    assert len(recs) == len({r.native_id for r in recs}) == len({parse_message(m).message_id for m in mbox})


def test_imap_expunged_messages_are_taken_down_when_asked(tmp_path, corpus, dovecot):
    from imapclient import IMAPClient

    user = dovecot.users.pop()
    mbox, _ = _corpus_messages(corpus)
    _append(dovecot, user, mbox[:6], folder="Support")
    imap = _imap_config(dovecot, user, folders=["Support"], on_delete="propagate")
    report, recs, _ = run_mail(tmp_path, imap=imap)
    assert report.sources[0].new == len(recs)
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(user, dovecot.password(user))
        c.select_folder("Support")
        first_two = sorted(c.search(["ALL"]))[:2]
        gone_ids = {m[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip() for m in c.fetch(first_two, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).values()}
        c.delete_messages(first_two)
        c.expunge()
    report, recs, _ = run_mail(tmp_path, imap=imap)
    assert report.sources[0].deleted == 2
    deleted = {r.native_id for r in recs if r.deleted}
    assert deleted == gone_ids and all(not r.deleted for r in recs if r.native_id not in gone_ids)
    # keep (the default): an expunge changes nothing
    report, recs, _ = run_mail(tmp_path / "keep" if (tmp_path / "keep").mkdir() is None else tmp_path, imap={**imap, "on_delete": "keep"})
    assert report.sources[0].deleted == 0
