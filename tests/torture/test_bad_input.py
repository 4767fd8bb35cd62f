"""Issue 19: bad input never stops a source, never loses the records after it.

The rule under test, for every built-in file source: an exception while reading
one record quarantines that record (with its location and payload) and the
source goes on; a file that cannot be read at all is quarantined and the source
goes on with the next file. Hand-written cases for each reported finding, then
hypothesis mutating valid feeds, mails, CSVs and JSON into those shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crmsync_crm_csv.source import ContactsSource
from crmsync_email.source import EmailSource
from crmsync_reviews.source import ReviewsSource
from crmsync_rss.source import RssSource
from crmsync_singer.source import SingerSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmsync
from crmsync.testing import read_source

DEEP = 100_000


def _split(records: list) -> tuple[list[crmsync.Interaction], list[crmsync.Rejected]]:
    return [r for r in records if isinstance(r, crmsync.Interaction)], [r for r in records if isinstance(r, crmsync.Rejected)]


def _rss(items: str, decl: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return f'{decl}<rss version="2.0"><channel><title>t</title><link>https://h.example/</link>{items}</channel></rss>'


def _item(n: int | str, title: str = "fine") -> str:
    return f"<item><guid>https://h.example/{n}</guid><title>{title} {n}</title></item>"


def _mail(n: int | str, extra: str = "", body: str = "hello") -> bytes:
    return f"From: A <a{n}@h.example>\nMessage-ID: <m{n}@h.example>\nSubject: s {n}\n{extra}\n{body}\n".encode()


def _mbox(messages: list[bytes]) -> bytes:
    return b"".join(b"From x@h.example Mon Nov  2 10:00:00 2026\n" + m + b"\n" for m in messages)


REVIEW_HEADER = "review_id,created_at,stars,title,body,reviewer_name"


def _review_rows(ids: range | list[str]) -> list[str]:
    return [f"{i},2026-11-01,4,t,fine,N{i}" for i in ids]


# the class: deep nesting fails one record, never the source ------------------------------------------
def test_a_json_feed_nested_100k_deep_is_quarantined_and_the_next_file_read(tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "a.json").write_text('{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"x","content_text":' + "[" * DEEP + "]" * DEEP + "}]}")
    (feeds / "b.xml").write_text(_rss(_item(1) + _item(2)))
    got, bad = _split(read_source(RssSource, {"feeds": ["feeds/"]}, tmp_path))
    assert {i.native_id for i in got} == {"https://h.example/1", "https://h.example/2"}
    (rej,) = bad
    assert rej.ref.endswith("a.json") and "nested too deeply" in rej.reason and rej.raw


@pytest.mark.parametrize("where", ["item", "title", "no-id", "atom-xhtml"])
def test_an_item_with_50k_nested_elements_is_quarantined_alone(tmp_path, where):
    n = 50_000
    if where == "atom-xhtml":
        doc = (
            '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
            '<entry><id>https://h.example/deep</id><title>d</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            + "<div>" * n + "x" + "</div>" * n
            + "</div></content></entry><entry><id>https://h.example/after</id><title>after</title></entry></feed>"
        )
    else:
        inner = "<x>" * n + "</x>" * n if where in ("item", "no-id") else ""
        title = "<b>" * n + "t" + "</b>" * n if where == "title" else "deep"
        guid = "" if where == "no-id" else "<guid>https://h.example/deep</guid>"
        doc = _rss(f"<item>{guid}<title>{title}</title>{inner}</item>" + _item("after"))
    (tmp_path / "f.xml").write_text(doc)
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    # inline XHTML is serialized iteratively and other markup is not recursed into:
    # however deep, the item is read, and the one after it too
    assert not bad and len(got) == 2 and got[1].native_id == "https://h.example/after"
    if where == "no-id":
        assert got[0].native_id.startswith("sha256:")  # an id derived from the item's title


def test_an_item_whose_reading_fails_is_quarantined_alone_with_its_bytes(tmp_path, monkeypatch):
    from crmsync_rss.parse import xmlfeeds

    real = xmlfeeds._rss_item

    def fragile(item, *args):
        if "boom" in (item.findtext("title") or ""):
            raise RecursionError("maximum recursion depth exceeded")
        return real(item, *args)

    monkeypatch.setattr(xmlfeeds, "_rss_item", fragile)
    (tmp_path / "f.xml").write_text(_rss(_item(1) + _item(2, "boom") + _item(3)))
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    assert [i.native_id for i in got] == ["https://h.example/1", "https://h.example/3"]
    (rej,) = bad
    assert rej.ref.endswith("f.xml#item2") and b"boom" in rej.raw and "RecursionError" in rej.reason


def test_json_lines_nested_100k_deep_loses_only_that_line(tmp_path):
    lines = [json.dumps({"review_id": f"R{n}", "created_at": "2026-11-01", "stars": 4, "body": "fine", "reviewer_name": "A"}) for n in range(3)]
    lines.insert(1, '{"review_id":"D","body":' + "[" * DEEP + "]" * DEEP + "}")
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    got, bad = _split(read_source(ReviewsSource, {"files": ["r.jsonl"], "platform": "shop"}, tmp_path))
    assert sorted(i.native_id for i in got) == ["R0", "R1", "R2"]
    (rej,) = bad
    assert rej.ref.endswith("r.jsonl:2") and rej.raw


@pytest.mark.parametrize("depth", [1_000, 5_000])
def test_mime_nested_thousands_deep_is_quarantined_and_the_rest_of_the_mbox_read(tmp_path, depth):
    nested = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    deep = b"From: Deep <deep@h.example>\nMessage-ID: <deep@h.example>\nSubject: deep\n" + nested.encode() + b"Content-Type: text/plain\n\ndeep text\n"
    (tmp_path / "m.mbox").write_bytes(_mbox([_mail(0), deep, _mail(1), _mail(2)]))
    got, bad = _split(read_source(EmailSource, {"paths": ["m.mbox"]}, tmp_path))
    assert sorted(i.native_id for i in got) == ["<m0@h.example>", "<m1@h.example>", "<m2@h.example>"]
    if depth > 1_000:  # 1,000 levels are read by the parser; 5,000 are not
        (rej,) = bad
        assert "m.mbox:offset" in rej.ref and b"deep text" in rej.raw


# CSV: long fields are data; an unclosed quote costs one line ------------------------------------------
def test_a_csv_field_over_128_kib_is_read_and_the_rows_after_it_too(tmp_path):
    rows = [REVIEW_HEADER, *_review_rows(range(5)), 'BIG,2026-11-01,4,t,"' + "x" * 200_000 + '",N', *_review_rows(range(100, 1600))]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    got, bad = _split(read_source(ReviewsSource, {"files": ["r.csv"], "platform": "shop"}, tmp_path))
    assert not bad and len(got) == 1506
    assert len(next(i for i in got if i.native_id == "BIG").body_text) == 200_000


def test_an_early_unterminated_quote_costs_one_line_not_the_1500_after_it(tmp_path):
    rows = [REVIEW_HEADER, *_review_rows(range(3)), 'Q1,2026-11-01,4,t,"unterminated,N', *_review_rows(range(100, 1600))]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    got, bad = _split(read_source(ReviewsSource, {"files": ["r.csv"], "platform": "shop"}, tmp_path))
    assert len(got) == 1503
    (rej,) = bad
    assert rej.ref.endswith("r.csv:5") and "unclosed quote" in rej.reason and b"unterminated" in rej.raw


def test_the_contacts_source_survives_a_huge_field_and_an_unclosed_quote(tmp_path):
    rows = ["id,first_name,last_name,email", *(f"{n},A,B,a{n}@x.example" for n in range(5)), '99,"' + "x" * 200_000 + '",B,big@x.example',
            '98,"Broken,B,broken@x.example', *(f"{n + 100},A,B,c{n}@x.example" for n in range(1500))]
    (tmp_path / "contacts.csv").write_text("\n".join(rows) + "\n")
    out = read_source(ContactsSource, {"file": "contacts.csv", "crm": "generic"}, tmp_path)
    people = [r for r in out if isinstance(r, crmsync.Identity)]
    bad = [r for r in out if isinstance(r, crmsync.Rejected)]
    assert len(people) == 1506 and len(bad) == 1
    # a contact whose row was quarantined is not taken for a removed one on the next read
    (tmp_path / "contacts.csv").write_text("\n".join([rows[0], '0,"A,B,a0@x.example', *rows[2:6]]) + "\n")
    state = next(r for r in reversed(out) if isinstance(r, crmsync.Checkpoint)).state
    again = read_source(ContactsSource, {"file": "contacts.csv", "crm": "generic"}, tmp_path, state=state)
    assert not [r for r in again if isinstance(r, crmsync.Identity) and r.removed]


# feeds in the encodings real feeds use are decoded, not quarantined -----------------------------------------
TITLES = {"big5": "中文標題", "euc-kr": "한국어 제목", "gb2312": "中文标题", "shift_jis": "日本語", "koi8-r": "Заголовок", "windows-1251": "Заголовок"}


@pytest.mark.parametrize("encoding", sorted(TITLES))
def test_a_feed_in_a_legacy_multibyte_encoding_is_decoded(tmp_path, encoding):
    (tmp_path / "f.xml").write_bytes(_rss(_item(1, TITLES[encoding]), f'<?xml version="1.0" encoding="{encoding}"?>').encode(encoding))
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    assert not bad and got[0].title == f"{TITLES[encoding]} 1"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_feed_is_decoded_with_or_without_a_mark(tmp_path, codec):
    (tmp_path / "f.xml").write_bytes(_rss(_item(1, "Grüße 中文"), '<?xml version="1.0" encoding="utf-16"?>').encode(codec))
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    assert not bad and got[0].title == "Grüße 中文 1"


def test_an_unknown_declared_encoding_falls_back_instead_of_failing(tmp_path):
    (tmp_path / "f.xml").write_bytes(_rss(_item(1, "Grüße"), '<?xml version="1.0" encoding="x-klingon"?>').encode())
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    assert not bad and got[0].title == "Grüße 1"


# generated: every shape of bad input, anywhere in a file --------------------------------------------------
def _poison_feed(kind: str) -> str:
    return {
        "deep": "<item><guid>https://h.example/poison</guid><title>p</title>" + "<x>" * 30_000 + "</x>" * 30_000 + "</item>",
        "noid": "<item><title>no id</title></item>",
        "baddate": "<item><guid>https://h.example/poison</guid><pubDate>32 Foo 99999 99:99</pubDate></item>",
        "script": "<item><guid>https://h.example/poison</guid><title><![CDATA[<script>alert(1)</script>x]]></title></item>",
        "nul": "<item><guid>https://h.example/poison&#x1;</guid></item>",
    }[kind]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 8), at=st.integers(0, 8), kind=st.sampled_from(["deep", "noid", "baddate", "script", "nul"]), deep_json=st.booleans())
def test_generated_bad_feed_items_never_cost_the_valid_ones(tmp_path_factory, n, at, kind, deep_json):
    tmp = tmp_path_factory.mktemp("feed")
    items = [_item(i) for i in range(n)]
    items.insert(min(at, n), _poison_feed(kind))
    (tmp / "a.xml").write_text(_rss("".join(items)))
    if deep_json:  # a whole file nobody can read, before another
        (tmp / "0.json").write_text('{"version":"https://jsonfeed.org/version/1.1","items":' + "[" * DEEP + "]" * DEEP + "}")
    got, _ = _split(read_source(RssSource, {"feeds": [str(tmp)]}, tmp))
    assert {f"https://h.example/{i}" for i in range(n)} <= {i.native_id for i in got}


def _poison_mail(kind: str) -> bytes:
    nested = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(3000))
    return {
        "deep": b"From: D <d@h.example>\nMessage-ID: <poison@h.example>\n" + nested.encode() + b"\n",
        "8bit-disposition": b"From: E <e@h.example>\nMessage-ID: <poison@h.example>\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"r\xe9sum\xe9.txt\"\n\nx\n",
        "garbage": bytes(range(256)) * 4,
        "nofrom": b"Subject: nobody\n\nno sender\n",
    }[kind]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 6), at=st.integers(0, 6), kind=st.sampled_from(["deep", "8bit-disposition", "garbage", "nofrom"]))
def test_generated_bad_mails_never_cost_the_valid_ones(tmp_path_factory, n, at, kind):
    tmp = tmp_path_factory.mktemp("mail")
    msgs = [_mail(i) for i in range(n)]
    msgs.insert(min(at, n), _poison_mail(kind))
    (tmp / "m.mbox").write_bytes(_mbox(msgs))
    got, _ = _split(read_source(EmailSource, {"paths": ["m.mbox"]}, tmp))
    assert {f"<m{i}@h.example>" for i in range(n)} <= {i.native_id for i in got}


def _poison_row(kind: str) -> str:
    return {
        "quote": 'P,2026-11-01,4,t,"never closed,N',
        "huge": 'P,2026-11-01,4,t,"' + "y" * 140_000 + '",N',
        "fields": "P,2026-11-01,4",
        "date": "P,not a date,4,t,b,N",
        "stars": "P,2026-11-01,many,t,b,N",
        "nul": "P,2026-11-01,4,t\x00,b\x00,N",
    }[kind]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 30), at=st.integers(0, 30), kind=st.sampled_from(["quote", "huge", "fields", "date", "stars", "nul"]), as_json=st.booleans())
def test_generated_bad_review_rows_never_cost_the_valid_ones(tmp_path_factory, n, at, kind, as_json):
    tmp = tmp_path_factory.mktemp("reviews")
    if as_json:
        lines = [json.dumps({"review_id": f"{i}", "created_at": "2026-11-01", "stars": 4, "body": "fine"}) for i in range(n)]
        lines.insert(min(at, n), {"quote": '{"review_id": "P", "body": "never closed', "huge": '{"review_id":"P","body":' + "[" * DEEP + "]" * DEEP + "}"}.get(kind, '{"review_id": "P", "stars": "many"}'))
        (tmp / "r.jsonl").write_text("\n".join(lines) + "\n")
        name = "r.jsonl"
    else:
        rows = _review_rows(range(n))
        rows.insert(min(at, n), _poison_row(kind))
        (tmp / "r.csv").write_text("\n".join([REVIEW_HEADER, *rows]) + "\n")
        name = "r.csv"
    got, _ = _split(read_source(ReviewsSource, {"files": [name], "platform": "shop"}, tmp))
    assert {str(i) for i in range(n)} <= {i.native_id for i in got}


# on the wire: a cut response advances nothing; a trickle meets a deadline ------------------------------------
def _fifty() -> bytes:
    return _rss("".join(f"<item><guid>https://h.example/w{n}</guid><title>t{n}</title><description><![CDATA[<p>body {n}</p>]]></description></item>\n" for n in range(50))).encode()


def test_a_response_cut_short_without_content_length_keeps_nothing_and_is_fetched_again(tmp_path):
    from ..feedserver import FeedServer

    server = FeedServer({"/f.xml": _fifty()}, lambda path, attempt: "cut")
    try:
        opts = {"feeds": [server.url("/f.xml")], "retries": 2, "retry_max_wait": 0}
        src_out = read_source(RssSource, opts, tmp_path)
        got, bad = _split(src_out)
        assert not got and not bad  # no record from a cut element, nothing quarantined either
        state = [r for r in src_out if isinstance(r, crmsync.Checkpoint)]
        assert not state or "etag" not in json.dumps(state[-1].state)  # no validator kept
        assert server.attempts["/f.xml"] == 2
        server.faults = lambda path, attempt: None
        got, _ = _split(read_source(RssSource, opts, tmp_path, state=state[-1].state if state else None))
        assert len(got) == 50
    finally:
        server.close()


def test_a_cut_response_is_retried_within_the_run(tmp_path):
    from ..feedserver import FeedServer

    server = FeedServer({"/f.xml": _fifty()}, lambda path, attempt: "cut" if attempt == 1 else None)
    try:
        got, bad = _split(read_source(RssSource, {"feeds": [server.url("/f.xml")], "retry_max_wait": 0}, tmp_path))
        assert len(got) == 50 and not bad
    finally:
        server.close()


def test_a_feed_file_cut_short_is_quarantined_whole_not_read_in_part(tmp_path):
    (tmp_path / "f.xml").write_bytes(_fifty()[:1500])
    got, bad = _split(read_source(RssSource, {"feeds": ["f.xml"]}, tmp_path))
    assert not got
    (rej,) = bad
    assert "ends before its root element is closed" in rej.reason


def test_a_trickled_body_meets_the_response_deadline(tmp_path):
    from ..feedserver import FeedServer

    server = FeedServer({"/f.xml": _fifty()}, lambda path, attempt: "trickle")
    try:
        src = RssSource("kit", {}, crmsync.Context(config_dir=tmp_path))
        import time

        from crmsync import Fetcher, FetchError

        fetcher = Fetcher(timeout=5, deadline=1.0, attempts=1)
        started = time.monotonic()
        with pytest.raises(FetchError, match="not complete after 1 s"):
            fetcher.fetch(server.url("/f.xml"))
        assert time.monotonic() - started < 4  # the 5 s read timeout never fired: the deadline did
        fetcher.close()
        assert src.config_schema["properties"]["deadline"]["default"] == 120
    finally:
        server.close()


def test_a_charset_given_only_in_http_decodes_the_feed(tmp_path):
    from ..feedserver import FeedServer

    body = _rss(_item(1, "Заголовок"), "").encode("koi8-r")
    server = FeedServer({"/f.xml": body}, content_types={"/f.xml": "application/rss+xml; charset=KOI8-R"})
    try:
        got, bad = _split(read_source(RssSource, {"feeds": [server.url("/f.xml")]}, tmp_path))
        assert not bad and got[0].title == "Заголовок 1"
    finally:
        server.close()


# NUL bytes: a PostgreSQL store and a CSV cell take neither ------------------------------------------------
def test_nul_bytes_in_a_guid_and_an_author_url_do_not_fail_a_postgres_batch(tmp_path, pg_database):
    from crmsync_crm_csv.sink import CsvSink

    from crmsync.testing import kit_config, kit_host, kit_run

    items = [
        {"id": "https://h.example/nul\u0000guid", "title": "t\u0000itle", "content_text": "b\u0000ody", "authors": [{"name": "N\u0000ame", "url": "https://h.example/u\u0000ser"}]},
        {"id": "https://h.example/fine", "title": "fine"},
    ]
    (tmp_path / "f.json").write_text(json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items}))
    host = kit_host(sources=[RssSource], sinks=[CsvSink])
    cfg = kit_config(tmp_path, host, sources={"f": ("rss", {"feeds": ["f.json"]})}, sinks={"out": ("crm_csv", {"profile": "generic", "output_dir": "out"})}, store_url=pg_database)
    report = kit_run(cfg)
    assert report.status == "ok", report
    cells = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out").glob("*.csv"))
    assert "https://h.example/nulguid" in cells and "https://h.example/user" in cells and "\x00" not in cells


# mail files: half a message is never a record; a file that is no mbox says so ---------------------------------
def test_an_mbox_cut_inside_a_header_holds_its_last_message_back(tmp_path):
    whole = _mbox([_mail(0), _mail(1), _mail(2, extra="List-Id: <l.example>\n")])
    (tmp_path / "m.mbox").write_bytes(whole[: whole.rindex(b"List-Id") + 1])  # cut inside the last header block
    opts = {"paths": ["m.mbox"]}
    first = read_source(EmailSource, opts, tmp_path)
    got, bad = _split(first)
    assert sorted(i.native_id for i in got) == ["<m0@h.example>", "<m1@h.example>"] and not bad
    state = [r for r in first if isinstance(r, crmsync.Checkpoint)][-1].state
    # the writer finishes: the whole message arrives, once
    (tmp_path / "m.mbox").write_bytes(whole)
    got, bad = _split(read_source(EmailSource, opts, tmp_path, state=state))
    assert "<m2@h.example>" in {i.native_id for i in got} and not bad
    assert all(i.title != "L" for i in got)


def test_an_mbox_left_cut_is_quarantined_on_the_next_run_not_emitted_half(tmp_path):
    whole = _mbox([_mail(0), _mail(1)])
    (tmp_path / "m.mbox").write_bytes(whole[:-25])  # inside the last body: no final newline
    opts = {"paths": ["m.mbox"]}
    first = read_source(EmailSource, opts, tmp_path)
    state = [r for r in first if isinstance(r, crmsync.Checkpoint)][-1].state
    got, bad = _split(read_source(EmailSource, opts, tmp_path, state=state))
    assert "<m1@h.example>" not in {i.native_id for i in got}
    (rej,) = bad
    assert "ends inside this message" in rej.reason and rej.raw.startswith(b"From: A <a1@")


def test_a_binary_file_named_mbox_is_quarantined_not_read_as_empty(tmp_path):
    (tmp_path / "x.mbox").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    got, bad = _split(read_source(EmailSource, {"paths": ["x.mbox"]}, tmp_path))
    assert not got
    (rej,) = bad
    assert "not an mbox file" in rej.reason


def test_an_attachment_name_in_raw_8bit_bytes_is_read_not_quarantined(tmp_path):
    mail = (b"From: E <e@h.example>\nMessage-ID: <att@h.example>\nSubject: s\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhello\n"
            b"--x\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"r\xe9sum\xe9.txt\"\n\nabc\n--x--\n")
    (tmp_path / "m.mbox").write_bytes(_mbox([mail]))
    got, bad = _split(read_source(EmailSource, {"paths": ["m.mbox"]}, tmp_path))
    assert not bad and got[0].attachments[0].filename == "résumé.txt"


# the singer source: one bad record is one quarantine entry, however the tap's output shifts ----------------------
def test_a_bad_tap_record_keeps_its_reference_across_runs(tmp_path):
    import sys

    def tap(lines: list[dict]) -> list[str]:
        script = tmp_path / "tap.py"
        script.write_text("import sys\nsys.stdout.write(" + repr("".join(json.dumps(m) + "\n" for m in lines)) + ")\n")
        return [sys.executable, str(script)]

    bad = {"type": "RECORD", "stream": "s", "record": {"text": "no id here"}}
    bad_mapping = {"type": "RECORD", "stream": "s", "record": {"id": "x9", "stars": "many"}}
    good = [{"type": "RECORD", "stream": "s", "record": {"id": f"r{n}", "text": "fine"}} for n in range(3)]
    streams = {"s": {"fields": {"native_id": "id", "body_text": "text", "rating": "stars"}}}
    first = read_source(SingerSource, {"command": tap([bad, bad_mapping, *good]), "streams": streams}, tmp_path)
    second = read_source(SingerSource, {"command": tap([*good, bad_mapping, bad]), "streams": streams}, tmp_path)
    refs = [sorted(r.ref for r in _split(out)[1]) for out in (first, second)]
    assert refs[0] == refs[1] and len(refs[0]) == 2, refs
    assert "s:x9" in refs[0]


# crm_csv: a kill between a file set's manifest and the ledger sends nothing twice ------------------------------
def _demo(tmp_path, demo_dir, extra: str = "") -> Path:
    cfg = demo_dir / "crmsync.toml"
    cfg.write_text(cfg.read_text().replace('output_dir = "out"', f'output_dir = "out"\nmax_rows_per_file = 4{extra}'))
    return cfg


def _versions(out: Path) -> list[tuple[str, str]]:
    from .conftest import crm_rows

    return [(r["external_id"], r["version"]) for r in crm_rows(out)]


@pytest.mark.parametrize("point", ["sink.after_flush:1", "sink.after_flush:2"])
def test_a_kill_after_the_manifest_does_not_resend_the_file_set(tmp_path, demo_dir, point):
    from .conftest import run

    cfg = _demo(tmp_path, demo_dir)
    assert run(cfg, env={"CRMSYNC_FAILPOINTS": point}).returncode == -9
    out = demo_dir / "out"
    assert list(out.glob(".pending-*.json")), "the marker of the set in place outlives the kill"
    res = run(cfg, "--json")
    assert res.returncode in (0, 1), res.stderr[-2000:]
    versions = _versions(out)
    assert len(versions) == len(set(versions)) == 12, versions
    assert not list(out.glob(".pending-*.json")) and not list(out.glob(".*.tmp"))
    assert "recognised" in res.stdout


def test_an_orphan_file_set_is_removed_and_its_records_delivered(tmp_path, demo_dir):
    from .conftest import run

    cfg = _demo(tmp_path, demo_dir)
    assert run(cfg).returncode in (0, 1)
    out = demo_dir / "out"
    # as a crash between renaming a set's files and its manifest leaves it
    newest = max(out.glob("manifest-*.json"), key=lambda m: m.name)
    orphans = [out / e["file"] for e in json.loads(newest.read_text())["files"]]
    newest.unlink()
    (out / ".interactions-20990101T000000.000000Z-deadbeef-001.csv.tmp").write_text("half")
    # the ledger does not know them either (the crash came before it): drop the sink's receipts for them
    import csv
    import sqlite3

    lost = [r["external_id"] for p in orphans if p.name.startswith("interactions") for r in csv.DictReader(open(p, encoding="utf-8", newline=""))]
    assert lost
    with sqlite3.connect(demo_dir / ".crmsync" / "crmsync.db") as db:
        db.executemany("DELETE FROM deliveries WHERE sink = 'crm_import' AND interaction_id = ?", [(i,) for i in lost])
    res = run(cfg, "--json")
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert not any(p.exists() for p in orphans)
    assert not list(out.glob(".*.tmp"))
    versions = _versions(out)
    assert len(versions) == len(set(versions)) and len({v[0] for v in versions}) == 12


def test_parallel_parts_never_remove_each_others_temporaries(tmp_path):
    from crmsync_crm_csv.filesets import settle

    mine = tmp_path / ".interactions-20261206T000000.000000Z-abcd1234-p1-001.csv.tmp"
    theirs = tmp_path / ".interactions-20261206T000000.000000Z-abcd1234-p0-001.csv.tmp"
    crashed = tmp_path / ".interactions-20261205T000000.000000Z-deadbeef-p0-004.csv.tmp"
    running = tmp_path / "interactions-20261206T000000.000000Z-abcd1234-p0-002.csv"  # renamed, manifest to come
    for f in (mine, theirs, crashed, running):
        f.write_text("x")
    settle(tmp_path, "abcd1234")
    assert mine.exists() and theirs.exists() and running.exists() and not crashed.exists()


# the store: locked too long, or emptied -------------------------------------------------------------------
def test_a_store_locked_too_long_exits_3_with_a_clear_error_and_a_json_report(tmp_path, demo_dir):
    import sqlite3
    import threading

    from .conftest import run

    cfg = demo_dir / "crmsync.toml"
    assert run(cfg).returncode == 0
    db = demo_dir / ".crmsync" / "crmsync.db"
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holding.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    t = threading.Thread(target=hold)
    t.start()
    try:
        holding.wait(10)
        res = run(cfg, "--json", env={"CRMSYNC_STORE_URL": f"sqlite:///{db}?timeout=1"})
    finally:
        release.set()
        t.join()
    assert res.returncode == 3, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "stayed locked by another process for 1 s" in res.stderr
    rep = json.loads(res.stdout)
    assert rep["status"] == "locked" and rep["exit_code"] == 3 and "stayed locked" in rep["error"]


def test_a_sqlite_store_truncated_to_nothing_is_refused_not_taken_for_new(tmp_path, demo_dir):
    from .conftest import run

    cfg = demo_dir / "crmsync.toml"
    assert run(cfg).returncode == 0
    db = demo_dir / ".crmsync" / "crmsync.db"
    for extra in db.parent.glob("crmsync.db-*"):
        extra.unlink()
    db.write_bytes(b"")
    res = run(cfg, "--json")
    assert res.returncode == 2 and "empty file, not a crmsync store" in res.stderr, res.stderr[-2000:]
    assert db.stat().st_size == 0  # left as it was, for the user to restore
    assert len(list((demo_dir / "out").glob("manifest-*.json"))) == 1  # nothing sent again


# secrets: refused as literals, masked by parsing ---------------------------------------------------------------
PASSWORD_SHAPES = ["s3cr3t-Zq9x", "Zq9x@Xk7y@Vb3w", "Pa9q/Ss8r:Ww7q", "Wq1z:Ee2y?Rr3x#Tt4w"]


def _cli(demo_dir: Path, *args: str, env: dict[str, str] | None = None):
    import os
    import subprocess

    from ..conftest import crmsync_cmd

    base = {k: v for k, v in os.environ.items() if k not in ("CRMSYNC_STORE_URL", "CRMSYNC_FAILPOINTS")}
    return subprocess.run([*crmsync_cmd(), "-c", str(demo_dir / "crmsync.toml"), *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=120)


@pytest.mark.parametrize("password", PASSWORD_SHAPES)
def test_a_literal_store_url_with_a_password_is_refused_without_showing_it(demo_dir, password):
    cfg = demo_dir / "crmsync.toml"
    cfg.write_text(cfg.read_text().replace('path = ".crmsync/crmsync.db"', f'url = "postgresql+psycopg://crm:{password}@db.example/crm"'))
    for args in (["validate"], ["run", "--json", "--no-progress"]):
        res = _cli(demo_dir, *args)
        assert res.returncode == 2, res.stderr
        assert "holds a password" in res.stderr
        for part in {password, *password.split("@"), *password.split("/"), *password.split(":")} - {""}:
            assert len(part) < 3 or part not in res.stdout + res.stderr, (part, res.stderr)


@pytest.mark.parametrize("password", PASSWORD_SHAPES)
@pytest.mark.parametrize("how", ["unparseable", "unreachable"])
def test_store_url_passwords_are_masked_in_every_error(demo_dir, password, how):
    url = f"postgres ql://crm:{password}@db.example/crm" if how == "unparseable" else f"postgresql+psycopg://crm:{password}@127.0.0.1:9/crm"
    for args in (["validate"], ["run", "--json", "--no-progress"], ["status"]):
        res = _cli(demo_dir, *args, env={"CRMSYNC_STORE_URL": url})
        assert res.returncode == 2, (args, res.stderr)
        shown = res.stdout + res.stderr
        for part in {password, *password.split("@"), *password.split("/"), *password.split(":")} - {""}:
            assert len(part) < 3 or part not in shown, (args, part, shown)
        assert "crm:***@" in shown or "percent-encode" in shown, shown


@pytest.mark.parametrize("literal", ["pat-na1:0xdeadbeefcafe", "hunter7:0xdeadbeefcafe", "hunter7"])
def test_a_literal_secret_with_a_colon_is_refused_and_no_part_of_it_kept(demo_dir, literal):
    cfg = demo_dir / "crmsync.toml"
    cfg.write_text(cfg.read_text() + f'\n[sinks.hub]\nplugin = "hubspot"\naccess_token = "{literal}"\n')
    for args in (["run", "--json", "--no-progress"], ["validate"]):
        res = _cli(demo_dir, *args)
        assert res.returncode == 2
        shown = res.stdout + res.stderr
        assert "not a literal value" in shown or "not the value" in shown, shown
        assert "hunter7" not in shown and "pat-na1" not in shown and "deadbeef" not in shown, shown
    db = demo_dir / ".crmsync" / "crmsync.db"
    assert not db.exists() or b"hunter7" not in db.read_bytes()


# output cells -------------------------------------------------------------------------------------------------
def test_output_cells_hold_no_formula_no_script_link_no_nul_and_numbers_stay_numbers(tmp_path):
    import csv

    from .conftest import run

    (tmp_path / "feeds").mkdir()
    items = [
        '<item><guid>https://h.example/q</guid><title>"=HYPERLINK("http://evil.example","x")</title><link>javascript:alert(1)</link></item>',
        "<item><guid>https://h.example/d</guid><title>data link</title><link>data:text/html;base64,PHNjcmlwdD4=</link>"
        "<author>x@h.example (Eric)</author></item>",
        "<item><guid>https://h.example/v</guid><title> =1+1</title><link> VBScript:msgbox</link><description>terrible awful broken</description></item>",
        '<item><guid>https://h.example/ok</guid><title>@Ericmakes4 says hi</title><link>https://h.example/ok</link></item>',
    ]
    (tmp_path / "feeds" / "f.xml").write_text(_rss("".join(items)))
    (tmp_path / "crmsync.toml").write_text(
        '[store]\npath = "s/crmsync.db"\n[sources.f]\nplugin = "rss"\nfeeds = ["feeds/"]\n'
        '[enrichers.sentiment]\nplugin = "sentiment"\n'
        '[sinks.csv]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"\n'
        '[sinks.hub]\nplugin = "crm_csv"\nprofile = "hubspot"\noutput_dir = "out-hub"\n'
    )
    assert run(tmp_path / "crmsync.toml").returncode == 0
    rows = [r for f in (tmp_path / "out").glob("interactions-*.csv") for r in csv.DictReader(open(f, encoding="utf-8", newline=""))]
    by_id = {r["native_id"]: r for r in rows}
    assert by_id["https://h.example/q"]["title"].startswith("'\"=HYPERLINK")
    assert by_id["https://h.example/v"]["title"] == "'=1+1"  # the title's leading space is trimmed first
    assert by_id["https://h.example/ok"]["title"] == "'@Ericmakes4 says hi"  # escaped, as OWASP advises
    assert {by_id[k]["url"] for k in ("https://h.example/q", "https://h.example/d", "https://h.example/v")} == {""}
    score = by_id["https://h.example/v"]["sentiment_score"]
    assert score.startswith("-") and float(score) < 0  # a number, not '-0.9
    blob = "".join(p.read_text(encoding="utf-8") for d in ("out", "out-hub") for p in (tmp_path / d).glob("*.csv")).lower()
    assert "javascript:" not in blob and "vbscript:" not in blob and "data:text/html" not in blob and "\x00" not in blob
