"""Issue 20: mail headers, bodies and folders read as mail clients show them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from crmsync_email.parse import parse_message
from crmsync_email.source import EmailSource

import crmsync
from crmsync.testing import read_source


def _msg(headers: str, body: bytes = b"hello\n") -> bytes:
    return headers.encode("latin-1") + b"\n" + body


def test_an_encoded_word_holding_latin1_bytes_is_decoded():
    m = parse_message(_msg("From: A <a@x.example>\nMessage-ID: <1@x>\nSubject: =?utf-8?q?caf=E9_cr=E8me?=\n"))
    assert m.subject == "café crème"


def test_undeclared_latin1_header_and_body_bytes_are_decoded():
    m = parse_message(b"From: Ren\xe9 Dupont <r@x.example>\nMessage-ID: <2@x>\nSubject: r\xe9sum\xe9\n\nd\xe9j\xe0 vu\n")
    assert (m.from_name, m.subject, m.text.strip()) == ("René Dupont", "résumé", "déjà vu")


def test_a_utf8_body_with_a_bad_byte_keeps_the_rest():
    m = parse_message(b"From: a@x.example\nMessage-ID: <3@x>\nContent-Type: text/plain; charset=utf-8\n\nna\xc3\xafve \xff end\n")
    assert m.text.startswith("naïve \ufffd end")


def test_a_multipart_whose_boundary_is_folded_over_lines_keeps_its_body():
    raw = (
        b'From: A <a@x.example>\nMessage-ID: <4@x>\nSubject: s\nContent-Type: multipart/alternative; boundary="----=_Part_12\n 34"\n\n'
        b"------=_Part_1234\nContent-Type: text/plain\n\nthe body\n------=_Part_1234--\n"
    )
    assert parse_message(raw).text.strip() == "the body"


@pytest.mark.parametrize(
    ("header", "name", "address"),
    [
        ("Foo, Bar <foo.bar@x.example>", "Foo, Bar", "foo.bar@x.example"),
        ("alice@example.com <bob@example.com>", "alice@example.com", "bob@example.com"),
        ("Name Surname name@host.example", "Name Surname", "name@host.example"),
    ],
)
def test_from_headers_mail_clients_still_show_are_read_and_kept_raw(tmp_path, header, name, address):
    (tmp_path / "m.eml").write_bytes(_msg(f"From: {header}\nMessage-ID: <5@x>\nSubject: s\n"))
    (rec,) = [r for r in read_source(EmailSource, {"paths": ["m.eml"]}, tmp_path) if isinstance(r, crmsync.Interaction | crmsync.Rejected)]
    assert isinstance(rec, crmsync.Interaction), rec
    assert (rec.author.name, rec.author.emails) == (name, [address])
    assert rec.extra["from_raw"] == header


def _maildir_message(folder, name: str, n: int, sub: str = "cur") -> None:
    (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / sub / f"{name}:2,S").write_bytes(_msg(f"From: A <a{n}@x.example>\nMessage-ID: <md{n}@x>\nSubject: s{n}\n"))


def test_a_maildir_with_only_cur_is_read(tmp_path):
    _maildir_message(tmp_path / "Mail", "1.a", 1)
    got = [r.native_id for r in read_source(EmailSource, {"paths": ["Mail"]}, tmp_path) if isinstance(r, crmsync.Interaction)]
    assert got == ["<md1@x>"]


def test_a_maildir_message_in_new_and_cur_is_read_once_from_cur_in_key_order(tmp_path):
    box = tmp_path / "Mail"
    (box / "new").mkdir(parents=True)
    (box / "new" / "2.a").write_bytes(_msg("From: A <a2@x.example>\nMessage-ID: <stale@x>\nSubject: s\n"))  # moved meanwhile
    _maildir_message(box, "2.a", 2)
    _maildir_message(box, "1.a", 1, "new")
    _maildir_message(box, "1.a.b", 3)  # a key that "1.a" prefixes: ordered by key, not by file name
    recs = [r for r in read_source(EmailSource, {"paths": ["Mail"]}, tmp_path) if isinstance(r, crmsync.Interaction)]
    assert [r.native_id for r in recs] == ["<md1@x>", "<md3@x>", "<md2@x>"]


def test_a_maildir_signature_is_the_one_earlier_versions_stored(tmp_path):
    """Bookmarks hold it: a changed formula would read every Maildir again after an upgrade."""
    import hashlib

    box = tmp_path / "Mail"
    for n, name in enumerate(["1.a", "1.a.b", "10.c", "2.x"]):
        _maildir_message(box, name, n)
    (box / "new" / "3.n").parent.mkdir(exist_ok=True)
    (box / "new" / "3.n").write_bytes(b"x" * 17)
    h = hashlib.sha256()
    for sub in ("cur", "new"):
        for f in sorted((box / sub).iterdir()):
            h.update(f"{f.name.split(':', 1)[0]}:{f.stat().st_size}\n".encode())
    assert EmailSource._signature("maildir", box) == h.hexdigest()


def test_a_folder_tree_is_walked_maildirpp_and_nested(tmp_path):
    root = tmp_path / "Mail"
    _maildir_message(root, "1.a", 1, "new")  # the inbox itself
    _maildir_message(root / ".Sent", "2.a", 2)  # Maildir++ sub-folder
    _maildir_message(root / ".INBOX.support", "3.a", 3)
    _maildir_message(tmp_path / "Mail" / "archive" / "2025", "4.a", 4)  # a Maildir further down
    (root / "exported").mkdir()
    (root / "exported" / "5.eml").write_bytes(_msg("From: A <a5@x.example>\nMessage-ID: <md5@x>\nSubject: s5\n"))
    got = sorted(r.native_id for r in read_source(EmailSource, {"paths": ["Mail"]}, tmp_path) if isinstance(r, crmsync.Interaction))
    assert got == [f"<md{n}@x>" for n in range(1, 6)]


# reply separation -------------------------------------------------------------------------------------
def _body(tmp_path, text: str, languages: list[str] | None = None) -> str:
    (tmp_path / "m.eml").write_bytes(("From: A <a@x.example>\nMessage-ID: <r@x>\nSubject: Re: s\nContent-Type: text/plain; charset=utf-8\n\n" + text).encode())
    opts = {"paths": ["m.eml"], **({"reply_languages": languages} if languages else {})}
    (rec,) = [r for r in read_source(EmailSource, opts, tmp_path) if isinstance(r, crmsync.Interaction)]
    return rec.body_text


def test_a_reply_written_below_the_quote_is_the_reply(tmp_path):
    text = "On Mon, Nov 2, 2026 at 10:00 AM Support <support@acme.example> wrote:\n> Did the rocket arrive?\n> Thanks\n\nYes, it arrived yesterday. All good.\n"
    assert _body(tmp_path, text) == "Yes, it arrived yesterday. All good."


def test_an_interleaved_reply_is_kept_whole(tmp_path):
    text = "Answers inline.\n\n> Did it arrive?\nYes.\n> Does it work?\nNo, it smokes.\n"
    assert "No, it smokes." in _body(tmp_path, text) and "Answers inline." in _body(tmp_path, text)


def test_a_russian_quote_header_is_recognised_when_russian_is_configured(tmp_path):
    text = "Спасибо, всё получил.\n\n02.11.2026 10:00 пользователь Поддержка <support@acme.example> написал:\n> Посылка отправлена.\n"
    assert _body(tmp_path, text, ["en", "ru"]) == "Спасибо, всё получил."
    text = "Спасибо, всё получил.\n\nПн, 2 нояб. 2026 г. в 10:00, Иван Петров написал(а):\n> Посылка отправлена.\n"
    assert _body(tmp_path, text, ["en", "ru"]) == "Спасибо, всё получил."


def test_an_unknown_reply_language_is_a_configuration_error(tmp_path):
    (tmp_path / "m.eml").write_bytes(b"From: a@x.example\nMessage-ID: <u@x>\n\nhi\n")
    with pytest.raises(crmsync.ConfigError, match="no reply patterns for 'xx'"):
        read_source(EmailSource, {"paths": ["m.eml"], "reply_languages": ["en", "xx"]}, tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"From a@x Mon Jan  1 00:00:00 2024\n", b"From b\n", b"\n", b"\r\n", b"Subject: s\n", b"body\n", b">From quoted\n", b"From", b"no newline", b"From x\r\n"]), max_size=30))
def test_mbox_messages_splits_as_the_standard_library(tmp_path_factory, lines):
    """The streaming reader gives the messages (and offsets) mailbox.mbox gives, for any lines."""
    import mailbox

    from crmsync_email.source import _count_mbox, mbox_messages

    path = tmp_path_factory.mktemp("mbox") / "box.mbox"
    path.write_bytes(b"".join(lines))
    box = mailbox.mbox(path, factory=None, create=False)
    expected = [(box._toc[k][0], box.get_bytes(k)) for k in box.keys()]
    assert list(mbox_messages(path)) == expected
    assert _count_mbox(path) == len(expected)
