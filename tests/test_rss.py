"""plugins/rss: formats, recovery, threads, platforms, listening, and HTTP against a real loopback server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import crmsync
from crmsync.store import Store
from crmsync.testing import kit_config, kit_host, kit_run
from crmsync_rss import RssSource
from crmsync_rss.parse import parse_date, parse_feed

from .corpus_config import make_corpus

DATA = Path(__file__).parent / "data" / "feeds"


@pytest.fixture
def server():
    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    try:
        yield s
    finally:
        s.clear()
        if s.is_running():
            s.stop()


def run_rss(tmp: Path, **options):
    host = kit_host(sources=[RssSource])
    cfg = kit_config(tmp, host, sources={"feeds": ("rss", options)})
    report = kit_run(cfg)
    store = Store(cfg.store_url)
    try:
        recs = [r for r, _ in store.interactions.iter()]
        quarantine = store.quarantine.items()
    finally:
        store.dispose()
    return report, recs, quarantine


def conditional_handler(files: dict[str, bytes], log: list | None = None):
    """Serve files with ETag and Last-Modified; answer 304 to a matching conditional GET."""

    def handle(request: Request) -> Response:
        body = files.get(request.path)
        if body is None:
            return Response("not found", status=404)
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if log is not None:
            log.append((request.path, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")))
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        data, headers = body, {"ETag": etag, "Last-Modified": "Mon, 02 Nov 2026 10:00:00 GMT", "Content-Type": "application/xml"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            data, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return Response(data, headers=headers)

    return handle


# parsing ---------------------------------------------------------------------
def test_formats():
    rss091 = b'<rss version="0.91"><channel><title>Old</title><link>https://old.example/</link><item><title>T</title><link>https://old.example/1</link><description>D &amp;amp; E</description></item></channel></rss>'
    rdf = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
      <channel rdf:about="https://r.example/"><title>R</title><link>https://r.example/</link></channel>
      <item rdf:about="https://r.example/1"><title>One</title><link>https://r.example/1</link><dc:creator>Ann</dc:creator><dc:date>2026-01-02T03:04:05Z</dc:date></item></rdf:RDF>"""
    atom03 = b"""<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>A3</title><link rel="alternate" href="https://a3.example/"/>
      <entry><id>tag:a3.example,2004:1</id><title>Old atom</title><issued>2004-01-02T03:04:05Z</issued><modified>2004-01-03T03:04:05Z</modified><author><name>Bo</name></author></entry></feed>"""
    jf10 = json.dumps({"version": "https://jsonfeed.org/version/1", "title": "J", "home_page_url": "https://j.example/", "author": {"name": "Cy", "url": "https://twitter.com/cy"}, "items": [{"id": "1", "content_text": "plain <b>text</b>", "date_published": "2026-01-01T00:00:00Z"}]}).encode()
    for data, fmt, title, author in [(rss091, "rss0.91", "T", None), (rdf, "rss1.0", "One", "Ann"), (atom03, "atom0.3", "Old atom", "Bo"), (jf10, "jsonfeed1", None, "Cy")]:
        feed = parse_feed(data)
        assert feed.format == fmt and not feed.recovered
        (e,) = feed.entries
        assert e.title == title and e.author_name == author
    assert parse_feed(atom03).entries[0].published.isoformat() == "2004-01-02T03:04:05+00:00"
    assert "&lt;b&gt;" in parse_feed(jf10).entries[0].content_html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 15 Jun 2025 08:24:49 +0200", "2025-06-15T06:24:49+00:00"),
        ("21 Dec 2024 07:19 EDT", "2024-12-21T11:19:00+00:00"),
        ("Wed, 02 Apr 2025 10:00:00 UT", "2025-04-02T10:00:00+00:00"),
        ("2025-06-15T02:24:49-04:00", "2025-06-15T06:24:49+00:00"),
        ("2025-06-15T02:24:49.123+05:30", "2025-06-14T20:54:49.123000+00:00"),
        ("2025-06-15T02:24:49Z", "2025-06-15T02:24:49+00:00"),
        ("2025-06-15", "2025-06-15T00:00:00+00:00"),
        ("Mon, 2 Jun 25 8:24:49 GMT", "2025-06-02T08:24:49+00:00"),
        ("2003-12-13T18:30:02", "2003-12-13T18:30:02+00:00"),
        ("not a date", None),
    ],
)
def test_dates(value, expected):
    got = parse_date(value)
    assert (got.isoformat() if got else None) == expected


def test_ill_formed_feeds_are_recovered():
    html_entities = b'<rss version="2.0"><channel><title>Caf&eacute; &amp; Bar</title><item><title>Fish &amp; Chips &nbsp;&mdash; &copy;</title><guid>https://c.example/1</guid><description>A & B</description></item></channel></rss>'
    feed = parse_feed(html_entities)
    assert "repaired" in feed.recovered and feed.entries[0].title == "Fish & Chips \u00a0\u2014 \u00a9"
    unclosed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title><item><title>One<b></title><guid>https://c.example/1</guid></item><item><title>Two</title><guid>https://c.example/2</guid></channel></rss>'
    feed = parse_feed(unclosed)
    assert "lenient" in feed.recovered and [e.native_id for e in feed.entries] == ["https://c.example/1", "https://c.example/2"]
    junk = b"\n\n  <!-- cached -->garbage<rss version=\"2.0\"><channel><item><guid>https://c.example/3</guid></item></channel></rss>"
    assert [e.native_id for e in parse_feed(junk).entries] == ["https://c.example/3"]
    with pytest.raises(crmsync.ConfigError if False else Exception, match="not a feed|malformed"):
        parse_feed(b"<html><body>404 page</body></html>")


def test_feedparser_author_tld_bug_does_not_apply():
    data = b'<rss version="2.0"><channel><item><guid>https://t.example/1</guid><author>jane.doe@shop.example (Jane Doe)</author></item></channel></rss>'
    e = parse_feed(data).entries[0]
    assert (e.author_email, e.author_name) == ("jane.doe@shop.example", "Jane Doe")


# files, threads, platforms, listening ------------------------------------------------
def test_wordpress_and_atom_threads(tmp_path):
    posts = b"""<rss version="2.0"><channel><title>S</title><link>https://site.example/</link>
      <item><title>Post</title><guid isPermaLink="false">https://site.example/?p=10</guid><link>https://site.example/post/</link></item></channel></rss>"""
    comments = b"""<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Comments for S</title><link>https://site.example/</link>
      <item><title>c1</title><guid isPermaLink="false">https://site.example/?p=10#comment-1</guid></item>
      <item><title>c2</title><guid isPermaLink="false">https://site.example/?p=10#comment-2</guid><content:encoded><![CDATA[<p>In reply to <a href="https://site.example/post/#comment-1">Ann</a>.</p><p>yes</p>]]></content:encoded></item>
      </channel></rss>"""
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "posts.xml").write_bytes(posts)
    (tmp_path / "f" / "comments.xml").write_bytes(comments)
    _, recs, _ = run_rss(tmp_path, feeds=["f"])
    by = {r.native_id: r for r in recs}
    post, c1, c2 = by["https://site.example/?p=10"], by["https://site.example/?p=10#comment-1"], by["https://site.example/?p=10#comment-2"]
    assert post.kind == "post" and post.thread_id == post.interaction_id
    assert c1.kind == "comment" and c1.in_reply_to == post.interaction_id and c1.thread_id == post.interaction_id
    assert c2.in_reply_to == c1.interaction_id and c2.thread_id == post.interaction_id


@pytest.mark.parametrize(
    ("file", "platform", "name", "handle", "profile"),
    [
        ("mastodon-account.rss", "mastodon", "@ines@fosstodon.org", "mastodon:@ines@fosstodon.org", "https://fosstodon.org/@ines"),
        ("mastodon-hashtag.rss", "mastodon", "@pablo@social.example", "mastodon:@pablo@social.example", "https://social.example/@pablo"),
        ("reddit-search.atom", "reddit", "u/rocketfan42", "reddit:u/rocketfan42", "https://www.reddit.com/user/rocketfan42"),
        ("bluesky-profile.rss", "bluesky", "@noor.bsky.social - Noor Haddad", "bluesky:@noor.bsky.social", "https://bsky.app/profile/noor.bsky.social"),
        ("youtube-channel.atom", "youtube", "Workshop Wendy", "youtube:channel/UCabc123", "https://www.youtube.com/channel/UCabc123"),
        ("discourse-latest.rss", "discourse", "@kofi_builds", "discourse:community.acme.example:kofi_builds", "https://community.acme.example/u/kofi_builds"),
        ("hackernews.rss", "hackernews", "tptacek_fan", "hackernews:tptacek_fan", "https://news.ycombinator.com/user?id=tptacek_fan"),
        ("medium.rss", "medium", "Lena Petrova", "medium:@lenapetrova", "https://medium.com/@lenapetrova"),
        ("wordpress.rss", "wordpress", "Greta Olsen", "feed:", None),
        ("ghost.rss", "ghost", "Sam Rivera", "feed:", None),
        ("substack.rss", "substack", "Omar Aziz", "feed:", None),
    ],
)
def test_platforms(tmp_path, file, platform, name, handle, profile):
    (tmp_path / "f.xml").write_bytes((DATA / "platforms" / file).read_bytes())
    report, (rec,), _ = run_rss(tmp_path, feeds=["f.xml"])
    assert report.exit_code == 0
    assert rec.extra["platform"] == platform and rec.author.name == name
    if handle == "feed:":  # known by name alone: a handle keyed by the site and the name (influence scoring needs an identity)
        (only,) = rec.author.handles
        assert only.startswith("feed:") and only.endswith(f":{name}") and "." in only.split(":")[1], only
    else:
        assert rec.author.handles == ([handle] if handle else [])
    assert rec.author.profile_urls == ([profile] if profile else [])


def test_twitter_profile_urls_become_handles():
    from crmsync_rss.platforms import author_of

    feed = parse_feed(json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "https://j.example/1", "authors": [{"name": "Ann", "url": "https://x.com/ann_makes"}]}]}).encode())
    assert author_of(feed, feed.entries[0], None).handles == ["twitter:ann_makes"]


def test_listening_rules_and_filter(tmp_path):
    feed = """<rss version="2.0"><channel><title>S</title><link>https://l.example/</link>
      <item><title>My ACME Rocket is great</title><guid isPermaLink="false">https://l.example/?p=1</guid><description>#AcmeRocket</description></item>
      <item><title>Unrelated bread recipe</title><guid isPermaLink="false">https://l.example/?p=2</guid></item>
      <item><title>Acme careers: we are hiring</title><guid isPermaLink="false">https://l.example/?p=3</guid></item>
      <item><title>Déjà vu with the acmé anvil</title><guid isPermaLink="false">https://l.example/?p=4</guid></item>
      <item><title>Reply</title><guid isPermaLink="false">https://l.example/?p=1#comment-9</guid><description>agreed!</description></item>
      <item><title>Reply to bread</title><guid isPermaLink="false">https://l.example/?p=2#comment-8</guid></item>
    </channel></rss>"""
    (tmp_path / "l.xml").write_text(feed, encoding="utf-8")
    listen = {"terms": {"Acme Rocket": ["Rocket 3000"], "Acme Anvil": []}, "exclude": ["acme careers"], "filter": True}
    report, recs, _ = run_rss(tmp_path, feeds=["l.xml"], listen=listen)
    by = {r.native_id.rsplit("/", 1)[1]: r for r in recs}
    assert set(by) == {"?p=1", "?p=4", "?p=1#comment-9"}
    assert by["?p=1"].mentions == ["Acme Rocket"] and by["?p=4"].mentions == ["Acme Anvil"]
    assert by["?p=1#comment-9"].mentions == []  # kept: it is in a matching thread
    assert "3 entries did not match the listen terms" in report.sources[0].notes[0]


# HTTP against a real loopback server ----------------------------------------------
def _corpus(tmp: Path, n: int) -> Path:
    return make_corpus(tmp / "corpus", n, 7)


def test_corpus_over_http_exactly_once_then_304(tmp_path, server):
    corpus = _corpus(tmp_path, 2000)
    files = {f"/feeds/{p.name}": p.read_bytes() for p in sorted((corpus / "feeds").iterdir())}
    log: list = []
    server.expect_request(__import__("re").compile("^/feeds/")).respond_with_handler(conditional_handler(files, log))
    urls = [server.url_for(path) for path in files]
    report, recs, quarantine = run_rss(tmp_path, feeds=urls, follow_comments=False)
    assert report.exit_code == 0, report.as_dict()
    truth = json.loads((corpus / "crm" / "truth.json").read_text())
    expected = [i for i in truth["interactions"] if i["source"] in ("rss", "atom", "jsonfeed")]
    by_native = {r.native_id: r for r in recs}
    assert len(recs) == len(expected) and set(by_native) == {i["key"] for i in expected}
    for item in expected:
        rec = by_native[item["key"]]
        assert rec.kind == item["kind"]
        assert rec.published.isoformat().replace("+00:00", "Z") == item["published"]
        if item.get("parent"):
            assert rec.in_reply_to == by_native[item["parent"]].interaction_id, item
        if item.get("unsafe_html"):
            html = rec.body_html or ""
            assert not __import__("re").search(r"<script|javascript:|\son\w+\s*=", html, __import__("re").I), html
    assert not quarantine
    first_requests = len(log)
    report2, recs2, _ = run_rss(tmp_path, feeds=urls, follow_comments=False)
    s = report2.sources[0]
    assert (s.read, s.new, report2.exit_code) == (0, 0, 0)
    second = log[first_requests:]
    assert len(second) == len(files) and all(etag for _, etag, _ in second), "the second run makes conditional requests"


def test_faults_still_deliver_everything(tmp_path, server):
    def feed(n: int) -> bytes:
        return f'<rss version="2.0"><channel><title>F{n}</title><link>https://f{n}.example/</link><item><guid>https://f{n}.example/1</guid><title>t{n}</title></item></channel></rss>'.encode()

    calls: dict[str, int] = {}

    def flaky(kind: str, body: bytes):
        def handle(request: Request) -> Response:
            calls[kind] = calls.get(kind, 0) + 1
            first = calls[kind] == 1
            if kind == "500" and first:
                return Response("oops", status=500)
            if kind == "429" and calls[kind] <= 2:
                return Response("slow down", status=429, headers={"Retry-After": "1"})
            if kind == "reset" and first:
                sock = request.environ["werkzeug.socket"]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(sock.detach())
                return Response("")
            if kind == "truncated" and first:
                def gen():
                    yield body[:10]
                return Response(gen(), headers={"Content-Length": str(len(body) + 100)})
            if kind == "slow":
                time.sleep(0.6)
            return Response(body, headers={"Content-Type": "application/rss+xml"})

        return handle

    kinds = ["500", "429", "reset", "truncated", "slow", "fine"]
    for n, kind in enumerate(kinds):
        server.expect_request(f"/{kind}.xml").respond_with_handler(flaky(kind, feed(n)))
    urls = [server.url_for(f"/{k}.xml") for k in kinds]
    t0 = time.monotonic()
    report, recs, _ = run_rss(tmp_path, feeds=urls, retry_max_wait=2, timeout=5)
    assert report.exit_code == 0, report.as_dict()
    assert sorted(r.title for r in recs) == [f"t{n}" for n in range(len(kinds))]
    assert calls["500"] == 2 and calls["429"] == 3 and calls["reset"] == 2 and calls["truncated"] == 2
    assert time.monotonic() - t0 >= 2.0  # the two Retry-After: 1 waits were honoured


def test_failing_feed_is_reported_and_the_rest_finish(tmp_path, server):
    server.expect_request("/ok.xml").respond_with_data('<rss version="2.0"><channel><item><guid>https://ok.example/1</guid></item></channel></rss>')
    server.expect_request("/gone.xml").respond_with_data("gone", status=410)
    server.expect_request("/missing.xml").respond_with_data("nope", status=404)
    server.expect_request("/down.xml").respond_with_data("down", status=503)
    urls = [server.url_for(p) for p in ("/ok.xml", "/gone.xml", "/missing.xml", "/down.xml")]
    report, recs, _ = run_rss(tmp_path, feeds=[*urls, "https://no-such-host.invalid/feed.xml"], retries=2, retry_max_wait=0.1)
    s = report.sources[0]
    assert len(recs) == 1 and s.status == "partial" and report.exit_code == 1
    errors = "\n".join(s.errors)
    assert "gone.xml: HTTP 410 Gone" in errors and "missing.xml: HTTP 404" in errors
    assert "down.xml: HTTP 503" in errors and "gave up after 2 attempts" in errors
    assert "DNS lookup failed for no-such-host.invalid" in errors


def test_permanent_redirect_updates_the_url(tmp_path, server):
    log: list = []
    body = b'<rss version="2.0"><channel><item><guid>https://m.example/1</guid></item></channel></rss>'
    server.expect_request("/old.xml").respond_with_handler(lambda r: (log.append("/old.xml"), Response(status=301, headers={"Location": "/new.xml"}))[1])
    server.expect_request("/new.xml").respond_with_handler(conditional_handler({"/new.xml": body}, log))
    url = server.url_for("/old.xml")
    report, recs, _ = run_rss(tmp_path, feeds=[url])
    assert len(recs) == 1 and f"moved permanently to {server.url_for('/new.xml')}" in report.sources[0].notes[0]
    log.clear()
    run_rss(tmp_path, feeds=[url])
    assert [entry[0] for entry in log] == ["/new.xml"] and log[0][1]  # straight to the new URL, conditionally


def test_private_address_guard(tmp_path, server):
    server.expect_request("/f.xml").respond_with_data('<rss version="2.0"><channel><item><guid>https://p.example/1</guid></item></channel></rss>')
    url = server.url_for("/f.xml")
    report, recs, _ = run_rss(tmp_path, feeds=[url], block_private_addresses=True)
    assert not recs and "resolves to the private/loopback address 127.0.0.1" in report.sources[0].errors[0]
    report, recs, _ = run_rss(tmp_path / "off" if (tmp_path / "off").mkdir() is None else tmp_path, feeds=[url])
    assert len(recs) == 1 and report.exit_code == 0


def test_size_cap_and_gzip_bomb(tmp_path, server):
    big = b"<rss>" + b" " * 3_000_000 + b"</rss>"
    server.expect_request("/big.xml").respond_with_data(big)
    bomb = gzip.compress(b"<rss>" + b"\0" * 20_000_000)
    server.expect_request("/bomb.xml").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    report, recs, _ = run_rss(tmp_path, feeds=[server.url_for("/big.xml"), server.url_for("/bomb.xml")], max_bytes=1_000_000)
    errors = "\n".join(report.sources[0].errors)
    assert "big.xml: response of 3000011 bytes is over the 1000000 byte limit" in errors
    assert "bomb.xml: response is over the 1000000 byte limit (after decompression)" in errors


def test_opml_and_followed_comments(tmp_path, server):
    post = f"""<rss version="2.0" xmlns:wfw="http://wellformedweb.org/CommentAPI/" xmlns:slash="http://purl.org/rss/1.0/modules/slash/"><channel><title>B</title><link>https://b.example/</link>
      <item><title>Post</title><guid isPermaLink="false">post-1</guid><pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate>
      <wfw:commentRss>{server.url_for('/c/post-1.xml')}</wfw:commentRss><slash:comments>1</slash:comments></item></channel></rss>""".encode()
    comments = b"""<rss version="2.0"><channel><title>Comments on Post</title><link>https://b.example/</link>
      <item><title>First!</title><guid isPermaLink="false">comment-7</guid></item></channel></rss>"""
    log: list = []
    server.expect_request(__import__("re").compile(".*")).respond_with_handler(conditional_handler({"/b.xml": post, "/c/post-1.xml": comments}, log))
    (tmp_path / "subs.opml").write_text(f'<?xml version="1.0"?><opml version="2.0"><body><outline text="Blogs"><outline type="rss" text="B" xmlUrl="{server.url_for("/b.xml")}"/></outline></body></opml>')
    report, recs, _ = run_rss(tmp_path, opml=["subs.opml"], comment_window_days=0)
    by = {r.native_id: r for r in recs}
    assert by["comment-7"].in_reply_to == by["post-1"].interaction_id and by["comment-7"].kind == "comment"
    assert by["post-1"].engagement == {"comments": 1}
    log.clear()
    report, _, _ = run_rss(tmp_path, opml=["subs.opml"], comment_window_days=0)
    assert sorted(p for p, etag, _ in log if etag) == ["/b.xml", "/c/post-1.xml"]  # both polled conditionally
    (tmp_path / "bomb.opml").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body><outline xmlUrl="&a;"/></body></opml>')
    report, _, _ = run_rss(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, opml=[str(tmp_path / "bomb.opml")])
    assert report.sources[0].status == "failed" and "cannot read OPML file" in report.sources[0].errors[0]


def test_gap_warning(tmp_path, server):
    def doc(days: list[int]) -> bytes:
        items = "".join(f"<item><guid>https://g.example/{d}</guid><pubDate>{d:02d} Nov 2026 10:00:00 GMT</pubDate></item>" for d in days)
        return f'<rss version="2.0"><channel><link>https://g.example/</link>{items}</channel></rss>'.encode()

    files = {"/g.xml": doc([1, 2, 3])}
    server.expect_request("/g.xml").respond_with_handler(lambda r: Response(files["/g.xml"]))
    run_rss(tmp_path, feeds=[server.url_for("/g.xml")])
    files["/g.xml"] = doc([5, 6, 7])  # 4 scrolled off between polls
    report, _, _ = run_rss(tmp_path, feeds=[server.url_for("/g.xml")])
    assert any("may have scrolled off" in n for n in report.sources[0].notes)
    files["/g.xml"] = doc([6, 7, 8])
    report, _, _ = run_rss(tmp_path, feeds=[server.url_for("/g.xml")])
    assert not any("scrolled off" in n for n in report.sources[0].notes)


def test_undated_and_same_timestamp_entries_are_neither_lost_nor_repeated(tmp_path, server):
    items = lambda ids: "".join(f"<item><guid>https://u.example/{i}</guid><title>{i}</title></item>" for i in ids)  # noqa: E731
    files = {"/u.xml": f'<rss version="2.0"><channel>{items("ab")}</channel></rss>'.encode()}
    server.expect_request("/u.xml").respond_with_handler(lambda r: Response(files["/u.xml"]))
    _, recs, _ = run_rss(tmp_path, feeds=[server.url_for("/u.xml")])
    files["/u.xml"] = f'<rss version="2.0"><channel>{items("abc")}</channel></rss>'.encode()
    report, recs, _ = run_rss(tmp_path, feeds=[server.url_for("/u.xml")])
    assert (report.sources[0].new, report.sources[0].unchanged) == (1, 2)
    assert sorted(r.title for r in recs) == ["a", "b", "c"]
