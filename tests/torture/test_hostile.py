"""Hostile and malformed input, hand-written and generated (hypothesis).

Zero crashes, zero entity expansion, every bad record in the quarantine with its
reason, every output cell safe. Needs nothing from ../shared.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.contract.text import neutralize_formula, sanitize_html
from crmsync_email.parse import MessageError, getaddresses, parse_message
from crmsync_rss.parse import FeedError, parse_feed

from .conftest import quarantine, report, run

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
            "=cmd|' /C notepad'!'A1'", "=1+1;=2"]
SCRIPT_HTML = '<p onclick="steal()">Hi<script>alert(document.cookie)</script><a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)><iframe src="https://evil.example"></iframe></p>'

BILLION_LAUGHS = """<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lollollol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<rss version="2.0"><channel><title>&d;</title><item><guid>https://h.example/bomb</guid><title>&d;</title></item></channel></rss>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><guid>https://h.example/xxe</guid><title>&x;</title></item></channel></rss>"""
PARAM_ENTITY = """<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>
<rss version="2.0"><channel><item><guid>https://h.example/param</guid></item></channel></rss>"""


def _rss(items: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Hostile</title><link>https://h.example/</link>{items}</channel></rss>'


def _hostile_tree(root: Path) -> None:
    feeds, mail, reviews = root / "feeds", root / "mail", root / "reviews"
    for d in (feeds, mail, reviews):
        d.mkdir(parents=True)
    (feeds / "bomb.xml").write_text(BILLION_LAUGHS)
    (feeds / "xxe.xml").write_text(EXTERNAL_ENTITY)
    (feeds / "param.xml").write_text(PARAM_ENTITY)
    (feeds / "garbage.xml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    # declared utf-8, written in latin-1: recovered with replacement characters, not a crash
    (feeds / "latin1.xml").write_bytes(_rss("<item><guid>https://h.example/enc</guid><title>Caf\xe9 cr\xe8me</title></item>").encode("latin-1"))
    # script-laden HTML and formula payloads in titles
    items = "".join(
        f"<item><guid>https://h.example/f{n}</guid><title><![CDATA[{p}]]></title><description><![CDATA[{SCRIPT_HTML}]]></description></item>"
        for n, p in enumerate(FORMULAS)
    )
    (feeds / "formulas.xml").write_text(_rss(items))
    # a 50 MB entry: over the size cap configured below, quarantined by size
    (feeds / "huge.xml").write_text(_rss(f"<item><guid>https://h.example/huge</guid><description>{'A' * (50 * 1024 * 1024)}</description></item>"))
    # mail: deeply nested MIME, header injection, broken boundary, unknown charset
    nested = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(400))
    msgs = [
        "From: Deep <deep@h.example>\nMessage-ID: <deep@h.example>\nSubject: deep\n" + nested + "Content-Type: text/plain\n\ndeep text\n",
        "From: Inject <inject@h.example>\nMessage-ID: <inject@h.example>\nSubject: hello\r\nBcc: victim@h.example\nX: =?utf-8?q?a=0D=0ABcc:_x@h.example?=\n\n=1+1 body\n",
        "From: Broken <broken@h.example>\nMessage-ID: <broken@h.example>\nSubject: broken\nContent-Type: multipart/alternative; boundary=\"zzz\"\n\n--zzz\nContent-Type: text/plain\n\nno closing boundary\n",
        "From: Charset <charset@h.example>\nMessage-ID: <charset@h.example>\nSubject: =?x-unknown-charset?b?SGVsbG8=?=\nContent-Type: text/plain; charset=x-klingon\n\n\xff\xfe bytes\n",
        "this is not a message at all\x00\x00",
    ]
    with open(mail / "hostile.mbox", "wb") as fh:
        for m in msgs:
            fh.write(b"From hostile@h.example Mon Nov  2 10:00:00 2026\n" + m.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe") + b"\n")
    # reviews: broken quoting, formula payloads, a row with a wrong column count
    rows = ["review_id,created_at,stars,title,body,reviewer_name,reviewer_email,product"]
    rows += [f'H{n},2026-11-0{n % 9 + 1} 10:00:00,{n % 5 + 1},"{p.replace(chr(34), chr(34) * 2)}","{SCRIPT_HTML.replace(chr(34), chr(34) * 2)}","{p.replace(chr(34), chr(34) * 2)}",h{n}@h.example,Acme Rocket' for n, p in enumerate(FORMULAS)]
    rows += ['HB1,2026-11-01 10:00:00,5,"unterminated quote,body,Name,x@h.example,Acme Rocket']
    (reviews / "hostile.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "crmsync.toml").write_text(
        '[store]\npath = "state/crmsync.db"\n'
        '[sources.feeds]\nplugin = "rss"\nfeeds = ["feeds/"]\nmax_bytes = 10000000\n'
        '[sources.mail]\nplugin = "email"\npaths = ["mail/hostile.mbox"]\n'
        '[sources.reviews]\nplugin = "reviews"\nfiles = ["reviews/hostile.csv"]\nplatform = "shop"\n'
        '[sinks.crm]\nplugin = "crm_csv"\nprofile = "generic"\noutput_dir = "out"\n'
        '[sinks.sf]\nplugin = "crm_csv"\nprofile = "salesforce"\noutput_dir = "out-sf"\n'
    )


UNSAFE_START = ("=", "+", "-", "@", "\t", "\r")


def test_hostile_inputs_end_to_end(tmp_path):
    _hostile_tree(tmp_path)
    res = run(tmp_path / "crmsync.toml", "--json")
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    rep = report(res)
    assert res.returncode == 1 and rep["status"] == "ok_with_quarantine", rep
    assert all(s["status"] == "ok" for s in rep["sources"] + rep["sinks"]), rep
    items = quarantine(tmp_path / "crmsync.toml")
    by_ref = {i["ref"]: i["reason"] for i in items}
    for name in ("bomb.xml", "xxe.xml", "param.xml", "garbage.xml", "huge.xml"):
        (reason,) = [r for ref, r in by_ref.items() if name in ref]
        assert reason
    assert any("hostile.csv" in ref for ref in by_ref), by_ref
    assert all(reason for reason in by_ref.values())
    # no entity was expanded, no local file read, anywhere
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".csv", ".json", ".db"))
    assert b"lollollollollol" not in blob and b"root:x:0:0" not in blob
    # every cell of every import file is safe to open in a spreadsheet
    cells = 0
    for out in ("out", "out-sf"):
        for f in (tmp_path / out).glob("*.csv"):
            with open(f, encoding="utf-8", newline="") as fh:
                for row in csv.reader(fh):
                    for cell in row:
                        cells += 1
                        plain_number = re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", cell)
                        assert plain_number or not cell.lstrip(' "').startswith(UNSAFE_START), f"{f.name}: unsafe cell {cell[:40]!r}"
                        assert "\x00" not in cell
                        assert "<script" not in cell.lower() and "javascript:" not in cell.lower() and "onerror" not in cell.lower(), f"{f.name}: {cell[:80]!r}"
    assert cells > 100
    # the recovered latin-1 feed and the odd mails arrived, not dropped
    listing = (tmp_path / "out").glob("interactions-*.csv")
    native = {r["native_id"] for f in listing for r in csv.DictReader(open(f, encoding="utf-8", newline=""))}
    assert {"https://h.example/enc", "<deep@h.example>", "<inject@h.example>", "<charset@h.example>", "<broken@h.example>"} <= native, native
    assert {f"H{n}" for n in range(len(FORMULAS))} <= native


# generated input ---------------------------------------------------------
xmlish = st.recursive(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    lambda children: st.tuples(st.sampled_from(["rss", "channel", "item", "title", "guid", "feed", "entry", "link", "!DOCTYPE x", "![CDATA["]), st.lists(children, max_size=4)).map(
        lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0].split()[0]}>"
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000), xmlish.map(lambda s: ('<?xml version="1.0"?>' + s).encode("utf-8", "surrogatepass"))))
def test_feed_parser_never_crashes(data):
    try:
        feed = parse_feed(data)
    except FeedError as exc:
        assert str(exc)
        return
    for e in feed.entries:
        assert e is not None


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([b"", b"From: a@b.example\nContent-Type: multipart/mixed; boundary=x\n\n--x\n", b"Subject: =?utf-8?b?"]))
def test_mime_parser_never_crashes(body, prefix):
    try:
        parsed = parse_message(prefix + body)
    except MessageError as exc:
        assert str(exc)
        return
    assert parsed is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_every_cell_is_neutralized(value):
    out = neutralize_formula(value)
    assert "\x00" not in out
    number = re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", out)
    assert number or not out.lstrip(' "').startswith(UNSAFE_START), out  # a formula, also behind spaces or quotes
    clean = value.replace("\x00", "")  # NULs go first: "\x00=" is the formula "="
    if number or (not clean.lstrip(' "').startswith(UNSAFE_START) and not clean.startswith("\n")):
        assert out == clean


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["<script>x</script>", "<a href='javascript:alert(1)'>", "<img src=x onerror=alert(1)>", "<b>", "</b>", "text", "<svg onload=alert(1)>", "<style>*{}</style>", "<p>"]), max_size=12))
def test_sanitized_html_is_inert(parts):
    out = sanitize_html("".join(parts)).lower()
    assert "<script" not in out and "javascript:" not in out and "onerror" not in out and "onload" not in out and "<svg" not in out


def test_ambiguous_from_is_not_read_as_a_spoofed_sender():
    # CVE-2023-27043: the lenient parser reads the display name as a second, spoofed address
    assert ("", "alice@good.example") not in getaddresses(["alice@good.example <eve@evil.example>"])
    assert getaddresses(['"alice@good.example" <eve@evil.example>']) == [("alice@good.example", "eve@evil.example")]
    assert getaddresses(["Ann <ann@x.example>, bo@y.example"]) == [("Ann", "ann@x.example"), ("", "bo@y.example")]


@pytest.mark.parametrize("payload", FORMULAS)
def test_formula_payloads_are_neutralized(payload):
    assert not neutralize_formula(payload).startswith(UNSAFE_START)
