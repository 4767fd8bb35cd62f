"""Issue 20: what real feeds say is read. One fixture (written here) per class of input
feedparser reads and crmsync used to drop or misread; bench/bench_feed_fidelity.py
measures the same on feedparser's own public fixtures."""

from __future__ import annotations

import base64
import json

import pytest
from crmsync_rss.parse import parse_feed
from crmsync_rss.source import RssSource

import crmsync
from crmsync.testing import read_source


def _one(tmp_path, doc: str | bytes, name: str = "f.xml") -> crmsync.Interaction:
    (tmp_path / name).write_bytes(doc.encode() if isinstance(doc, str) else doc)
    got = [r for r in read_source(RssSource, {"feeds": [name]}, tmp_path) if isinstance(r, crmsync.Interaction | crmsync.Rejected)]
    assert len(got) == 1 and isinstance(got[0], crmsync.Interaction), got
    return got[0]


def _rss(item: str, ns: str = "", channel: str = "") -> str:
    return f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>t</title><link>https://blog.example/</link>{channel}<item>{item}</item></channel></rss>'


# items without guid, id or link -----------------------------------------------------------------
def test_an_item_without_guid_or_link_gets_a_stable_id_from_what_it_holds(tmp_path):
    doc = _rss("<title>Forum reply</title><description>I agree</description><pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate>")
    first = _one(tmp_path, doc)
    again = _one(tmp_path, doc)
    assert first.native_id.startswith("sha256:") and first.interaction_id == again.interaction_id
    edited = _one(tmp_path, doc.replace("I agree", "I agree, mostly"))
    assert edited.interaction_id != first.interaction_id  # an edit is a new interaction: nothing else ties the two


# formats and versions --------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1", "1.0", "1.1", "https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1"])
def test_json_feed_versions(tmp_path, version):
    doc = json.dumps({"version": version, "title": "t", "items": [{"id": "https://j.example/1", "content_text": "hello"}]})
    assert _one(tmp_path, doc, "f.json").body_text == "hello"


def test_cdf(tmp_path):
    doc = '<CHANNEL HREF="http://cdf.example/" BASE="http://cdf.example/"><TITLE>c</TITLE><ITEM HREF="/item/1" LASTMOD="2004-04-06T23:05:43-05:00"><TITLE>item</TITLE><ABSTRACT>about it</ABSTRACT></ITEM></CHANNEL>'
    rec = _one(tmp_path, doc)
    assert rec.url == "http://cdf.example/item/1" and rec.title == "item" and rec.body_text == "about it"
    assert rec.updated.isoformat() == "2004-04-07T04:05:43+00:00"


@pytest.mark.parametrize("ns", ["http://backend.userland.com/rss2", "http://blogs.law.harvard.edu/tech/rss"])
def test_rss2_in_a_default_namespace(tmp_path, ns):
    rec = _one(tmp_path, _rss("<guid>https://blog.example/1</guid><title>namespaced</title>", f'xmlns="{ns}"'))
    assert rec.title == "namespaced"


@pytest.mark.parametrize("ns", ["http://purl.org/atom/ns#", "http://purl.org/echo/", "http://purl.org/pie/", "http://example.com/necho", "http://purl.org/atom/ns#draft-ietf-atompub-format-08"])
def test_pre_release_atom_namespaces(tmp_path, ns):
    doc = f'<feed xmlns="{ns}"><entry><id>tag:a.example,2004:1</id><title>early atom</title><issued>2004-01-01T19:48:21Z</issued></entry></feed>'
    rec = _one(tmp_path, doc)
    assert rec.title == "early atom" and rec.published.year == 2004


# elements ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        '<body xmlns="http://www.w3.org/1999/xhtml"><p>Body <b>text</b></p></body>',
        '<xhtml:body xmlns:xhtml="http://www.w3.org/1999/xhtml"><xhtml:p>Body <xhtml:b>text</xhtml:b></xhtml:p></xhtml:body>',
        "<fullitem>&lt;p&gt;Body &lt;b&gt;text&lt;/b&gt;&lt;/p&gt;</fullitem>",
        "<body><p>Body <b>text</b></p></body>",
    ],
)
def test_rss_bodies(tmp_path, body):
    rec = _one(tmp_path, _rss(f"<guid>https://blog.example/b</guid>{body}"))
    assert rec.body_text == "Body text" and "<b>text</b>" in rec.body_html


@pytest.mark.parametrize("mode", ["xml", "escaped", "base64"])
def test_atom03_content_modes(tmp_path, mode):
    html = "<p>Mode <b>content</b></p>"
    inner = {"xml": f'<div xmlns="http://www.w3.org/1999/xhtml">{html}</div>', "escaped": html.replace("<", "&lt;"), "base64": base64.b64encode(html.encode()).decode()}[mode]
    doc = f'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry><id>tag:a.example,2004:m</id><content type="text/html" mode="{mode}">{inner}</content></entry></feed>'
    assert _one(tmp_path, doc).body_text == "Mode content"


def test_dublin_core_dcterms_itunes_and_atom_elements_inside_rss(tmp_path):
    ns = 'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
    rec = _one(tmp_path, _rss("<guid>https://blog.example/dc</guid><dc:title>DC title</dc:title><dc:creator>Dee Cee</dc:creator><dcterms:issued>2003-12-31T10:14:55Z</dcterms:issued><dcterms:modified>2004-01-01T00:00:00Z</dcterms:modified>", ns))
    assert (rec.title, rec.author.name, rec.published.year, rec.updated.year) == ("DC title", "Dee Cee", 2003, 2004)
    rec = _one(tmp_path, _rss("<guid>https://blog.example/a</guid><atom:author><atom:name>Ann Atom</atom:name><atom:email>ann@a.example</atom:email><atom:uri>https://ann.example/</atom:uri></atom:author><atom:published>2005-05-05T05:05:05Z</atom:published><atom:link href='https://blog.example/a.html'/>", ns))
    assert (rec.author.name, rec.author.emails, rec.author.profile_urls, rec.published.year) == ("Ann Atom", ["ann@a.example"], ["https://ann.example/"], 2005)
    rec = _one(tmp_path, _rss("<guid>https://blog.example/i</guid><itunes:author>Pod Caster</itunes:author>", ns))
    assert rec.author.name == "Pod Caster"


def test_atom03_author_url(tmp_path):
    doc = '<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry><id>tag:a.example,2004:u</id><title>t</title><author><name>Ursula</name><url>https://ursula.example/</url></author></entry></feed>'
    assert _one(tmp_path, doc).author.profile_urls == ["https://ursula.example/"]


@pytest.mark.parametrize(("dc", "wfw"), [("http://purl.org/dc/elements/1.1", "http://wellformedweb.org/commentAPI/"), ("HTTP://PURL.ORG/DC/ELEMENTS/1.1/", "http://wellformedweb.org/CommentAPI")])
def test_namespace_uris_differing_by_a_slash_or_case(tmp_path, dc, wfw):
    doc = _rss("<guid>https://blog.example/n</guid><dc:creator>Slash Less</dc:creator><wfw:commentRss>https://blog.example/n/feed</wfw:commentRss>", f'xmlns:dc="{dc}" xmlns:wfw="{wfw}"')
    assert _one(tmp_path, doc).author.name == "Slash Less"
    assert parse_feed(doc.encode()).entries[0].comments_feed == "https://blog.example/n/feed"


# authors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["Jane Doe (jane@d.example)", "jane@d.example (Jane Doe)", "Jane Doe <jane@d.example>"])
def test_rss_author_shapes(tmp_path, value):
    rec = _one(tmp_path, _rss(f"<guid>https://blog.example/x</guid><author>{value.replace('<', '&lt;').replace('>', '&gt;')}</author>"))
    assert rec.author.name == "Jane Doe" and rec.author.emails == ["jane@d.example"]


def test_a_name_only_author_is_an_identity_of_that_site(tmp_path):
    ns = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
    a = _one(tmp_path, _rss("<guid>https://blog.example/1</guid><dc:creator>forumfan</dc:creator>", ns))
    b = _one(tmp_path, _rss("<guid>https://blog.example/2</guid><dc:creator>forumfan</dc:creator>", ns))
    assert a.author.handles == ["feed:blog.example:forumfan"] and a.author.identity_id == b.author.identity_id is not None


# xml:base and HTML ----------------------------------------------------------------------------------
def test_xml_base_resolves_links_enclosures_and_links_in_content(tmp_path):
    doc = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://base.example/blog/"><entry xml:base="posts/"><id>tag:b,1</id><title>t</title>'
        '<link href="one.html"/><link rel="enclosure" href="../media/a.mp3" type="audio/mpeg"/>'
        '<content type="html">&lt;a href="two.html"&gt;two&lt;/a&gt; &lt;img src="/img/x.png"&gt;</content></entry></feed>'
    )
    rec = _one(tmp_path, doc)
    assert rec.url == "https://base.example/blog/posts/one.html"
    assert rec.attachments[0].url == "https://base.example/blog/media/a.mp3"
    assert 'href="https://base.example/blog/posts/two.html"' in rec.body_html and 'src="https://base.example/img/x.png"' in rec.body_html


def test_html_keeps_what_feedparser_keeps_and_drops_script_and_forms(tmp_path):
    html = (
        '<figure><img src="https://i.example/a.png" alt="a" width="10"><figcaption>cap</figcaption></figure><table border="1"><tr><td colspan="2">cell</td></tr></table>'
        '<details open><summary>more</summary>hidden</details><mark>hi</mark><time datetime="2026-01-01">then</time>'
        '<form action="https://evil.example"><input name="password"></form><script>steal()</script><p style="position:fixed" onclick="x()">p</p>'
    )
    rec = _one(tmp_path, _rss(f"<guid>https://blog.example/h</guid><description><![CDATA[{html}]]></description>"))
    for kept in ("<figure>", "<figcaption>", 'colspan="2"', "<details open", "<mark>", 'datetime="2026-01-01"', 'width="10"'):
        assert kept in rec.body_html, kept
    for gone in ("<form", "<input", "<script", "steal()", "style=", "onclick"):
        assert gone not in rec.body_html, gone


def test_script_text_never_reaches_a_plain_text_title(tmp_path):
    rec = _one(tmp_path, _rss("<guid>https://blog.example/s</guid><title>&lt;script&gt;alert(1)&lt;/script&gt;Safe title</title>"))
    assert rec.title == "Safe title"


def test_windows_1252_punctuation_is_decoded(tmp_path):
    # numeric references into the C1 range, as feeds written on Windows have them, and UTF-8 read as Latin-1
    rec = _one(tmp_path, _rss("<guid>https://blog.example/w</guid><title>&#147;Quoted&#148; &#150; dash&#133;</title><description>&#226;&#128;&#166;</description>"))
    assert rec.title == "\u201cQuoted\u201d \u2013 dash\u2026" and rec.body_text == "\u2026"


# reviews ------------------------------------------------------------------------------------------------
def test_json_lines_in_a_json_file_and_concatenated_objects_are_read(tmp_path):
    from crmsync_reviews.source import ReviewsSource

    rows = [{"review_id": f"R{n}", "created_at": "2026-11-01", "stars": 4, "body": "fine"} for n in range(3)]
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n" + json.dumps({**rows[0], "review_id": "R9"}) + "\n")
    (tmp_path / "glued.json").write_text("".join(json.dumps({**r, "review_id": "G" + r["review_id"]}) for r in rows))
    out = read_source(ReviewsSource, {"files": ["lines.json", "glued.json"], "platform": "shop"}, tmp_path)
    got = sorted(r.native_id for r in out if isinstance(r, crmsync.Interaction))
    assert got == ["GR0", "GR1", "GR2", "R0", "R1", "R2", "R9"]
    (bad,) = [r for r in out if isinstance(r, crmsync.Rejected)]
    assert bad.ref.endswith("lines.json:4") and "not valid JSON" in bad.reason


def test_a_pages_aggregate_is_its_own_products_and_counts_ratings(tmp_path):
    from crmsync_reviews.source import ReviewsSource

    def product(name: str, url: str, value: str) -> dict:
        return {"@type": "Product", "name": name, "url": url, "aggregateRating": {"@type": "AggregateRating", "ratingValue": value, "reviewCount": "12", "ratingCount": "480"}}

    page = [product("Related Anvil", "https://shop.example/anvil", "2.1"), {**product("Acme Rocket", "https://shop.example/rocket", "4.6"), "review": [{"@type": "Review", "reviewBody": "Flies", "reviewRating": {"ratingValue": "5"}, "author": {"name": "Ann"}}]}]
    html = f'<html><head><script type="application/ld+json">{json.dumps(page)}</script></head><body></body></html>'
    (tmp_path / "rocket.html").write_text(html)
    out = read_source(ReviewsSource, {"pages": ["rocket.html"], "platform": "shop"}, tmp_path)
    state = [r for r in out if isinstance(r, crmsync.Checkpoint)][-1].state
    (agg,) = state["aggregates"].values()
    assert agg["item"] == "Acme Rocket" and agg["rating"] == 4.6 and agg["count"] == "480"
