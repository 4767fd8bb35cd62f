"""plugins/reviews: platform presets (golden), dates, schema.org pages, the corpus, HTTP, grown exports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import crmsync
from crmsync.contract.base import Context
from crmsync.host.config import validate_options
from crmsync.store import Store
from crmsync.testing import kit_config, kit_host, kit_run
from crmsync_reviews import ReviewsSource
from crmsync_reviews.source import parse_date

from .corpus_config import make_corpus

DATA = Path(__file__).parent / "data" / "reviews"
GOLDEN = Path(__file__).parent / "golden" / "reviews"


def read(tmp: Path, **options) -> tuple[list[crmsync.Interaction], list[crmsync.Rejected], ReviewsSource]:
    opts = validate_options(ReviewsSource.config_schema, options, where="test")
    src = ReviewsSource("reviews", opts, Context(config_dir=tmp))
    items = list(src.read(None))
    return [i for i in items if isinstance(i, crmsync.Interaction)], [i for i in items if isinstance(i, crmsync.Rejected)], src


def summary(rec: crmsync.Interaction) -> dict:
    return {
        "kind": rec.kind, "native_id": rec.native_id, "scope": rec.scope, "title": rec.title, "body_text": rec.body_text,
        "published": rec.published.isoformat() if rec.published else None,
        "rating": [rec.rating.value, rec.rating.worst, rec.rating.best, rec.rating.normalized] if rec.rating else None,
        "author": {"name": rec.author.name, "emails": rec.author.emails, "handles": rec.author.handles, "urls": rec.author.profile_urls} if rec.author else None,
        "item": rec.item_reviewed.model_dump(exclude_none=True) if rec.item_reviewed else None,
        "engagement": rec.engagement, "language": rec.language, "in_reply_to_review": rec.in_reply_to is not None, "platform": rec.extra.get("platform"),
    }


@pytest.mark.parametrize(
    ("file", "preset"),
    [("trustpilot.csv", "trustpilot"), ("google_business.json", "google_business"), ("app_store.json", "app_store"), ("google_play.csv", "google_play"),
     ("yelp.jsonl", "yelp"), ("amazon.jsonl", "amazon"), ("amazon_2023.jsonl", "amazon_2023"), ("page-microdata.html", "web"), ("page-rdfa.html", "web")],
)
def test_presets_detected_and_golden(tmp_path, file, preset):
    shutil.copy(DATA / file, tmp_path / file)
    key = "pages" if file.endswith(".html") else "files"
    recs, rejected, _ = read(tmp_path, **{key: [file]})
    assert not rejected and recs
    assert {r.extra["platform"] for r in recs} == {preset}
    got = [summary(r) for r in recs]
    golden = GOLDEN / f"{file}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(golden.read_text()), f"differs from {golden} (UPDATE_GOLDEN=1 to accept)"


def test_replies_ratings_and_details():
    recs, _, _ = read(DATA, files=["trustpilot.csv", "google_business.json", "app_store.json", "google_play.csv", "amazon.jsonl"])
    replies = [r for r in recs if r.kind == "reply"]
    by_id = {r.interaction_id: r for r in recs}
    assert len(replies) == 4 and all(by_id[r.in_reply_to].kind == "review" and r.thread_id == r.in_reply_to for r in replies)
    gbp = next(r for r in recs if r.native_id == "AbFvOq1")
    assert gbp.rating.value == 4 and gbp.rating.normalized == 0.75
    amazon = next(r for r in recs if r.native_id.startswith("sha256:") and r.body_text == "Strong magnet, holds my tools.")
    assert amazon.engagement == {"helpful_votes": 1024} and amazon.author.handles == ["amazon:A3HVRXV0LVJN7"]
    assert amazon.published.isoformat() == "2009-09-13T00:00:00+00:00"


def test_microdata_uses_declared_scale_and_rdfa_defaults():
    recs, _, _ = read(DATA, pages=["page-microdata.html", "page-rdfa.html"])
    by = {r.native_id: r for r in recs}
    micro, rdfa = by["https://shop.acme.example/p/rocket#r-77"], by["https://shop.acme.example/p/anvil#r-5"]
    assert (micro.rating.value, micro.rating.worst, micro.rating.best, micro.rating.normalized) == (9, 0, 10, 0.9)
    assert (rdfa.rating.best, rdfa.rating.worst, rdfa.rating.normalized) == (5, 1, 0.75)  # schema.org defaults
    assert micro.item_reviewed.id == "ACME-RKT-01" and rdfa.author.name == "Juno Park"


def test_aggregate_ratings_are_kept_per_item_not_as_interactions(tmp_path):
    shutil.copy(DATA / "page-microdata.html", tmp_path / "p.html")
    host = kit_host(sources=[ReviewsSource])
    cfg = kit_config(tmp_path, host, sources={"r": ("reviews", {"pages": ["p.html"]})})
    report = kit_run(cfg)
    store = Store(cfg.store_url)
    try:
        agg = store.bookmarks.get("r")["aggregates"]
        kinds = [r.kind for r, _ in store.interactions.iter()]
    finally:
        store.dispose()
    assert report.sources[0].new == 1 and kinds == ["review"]
    assert agg["web/ACME-RKT-01"]["rating"] == 8.6 and agg["web/ACME-RKT-01"]["normalized"] == pytest.approx(7.6 / 9, abs=1e-6) and agg["web/ACME-RKT-01"]["count"] == "42"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("31-Jul-18", "2018-07-31T00:00:00+00:00"), (1722614478000, "2024-08-02T16:01:18+00:00"), ("1252800000", "2009-09-13T00:00:00+00:00"),
     ("2026-11-02T10:00:00+05:30", "2026-11-02T04:30:00+00:00"), ("09 13, 2009", "2009-09-13T00:00:00+00:00"), ("Jul 31, 2018", "2018-07-31T00:00:00+00:00"),
     ("2018-07-07 22:09:11", "2018-07-07T22:09:11+00:00"), ("31.07.2018", "2018-07-31T00:00:00+00:00"), ("Tue, 31 Jul 2018 10:00:00 +0200", "2018-07-31T08:00:00+00:00")],
)
def test_dates(value, expected):
    assert parse_date(value).isoformat() == expected


def test_generic_export_quirks_and_quarantine(tmp_path):
    shutil.copy(DATA / "generic.csv", tmp_path / "g.csv")
    recs, rejected, _ = read(tmp_path, files=["g.csv"], platform="shop")
    assert [r.native_id for r in recs] == ["G-1", "G-2", "G-3"]
    assert recs[1].body_text == "Multi\nline"
    assert [(r.ref.rsplit(":", 1)[1], r.reason.split(":")[0]) for r in rejected] == [("7", "cannot read review"), ("8", "cannot read review")]
    assert "unrecognized date 'not-a-date'" in rejected[0].reason and "eleven" in rejected[1].reason
    assert rejected[0].raw.decode().startswith("review_id,created_at,stars")


def test_grown_and_edited_export_delivers_only_changes(tmp_path):
    path = tmp_path / "r.csv"
    rows = ["review_id,created_at,stars,title,body,reviewer_name", "R1,2026-01-01,5,a,first,Ann", "R2,2026-01-02,4,b,second,Bo"]
    path.write_text("\n".join(rows) + "\n")
    host = kit_host(sources=[ReviewsSource])
    cfg = kit_config(tmp_path, host, sources={"r": ("reviews", {"files": ["r.csv"]})})
    assert kit_run(cfg).sources[0].new == 2
    rows[2] = "R2,2026-01-02,2,b,second (edited: it broke),Bo"
    path.write_text("\n".join([*rows, "R3,2026-01-03,1,c,third,Cy"]) + "\n")
    s = kit_run(cfg).sources[0]
    assert (s.new, s.updated, s.unchanged) == (1, 1, 1)


def test_exports_over_http_with_conditional_get(tmp_path):
    body = (DATA / "yelp.jsonl").read_bytes()
    log = []

    def handle(request: Request) -> Response:
        log.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(body, headers={"ETag": '"v1"', "Content-Type": "application/x-ndjson"})

    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        server.expect_request("/export/reviews.jsonl").respond_with_handler(handle)
        server.expect_request("/page.html").respond_with_data((DATA / "page-microdata.html").read_bytes(), content_type="text/html")
        server.expect_request("/missing.csv").respond_with_data("no", status=404)
        host = kit_host(sources=[ReviewsSource])
        opts = {"files": [server.url_for("/export/reviews.jsonl"), server.url_for("/missing.csv")], "pages": [server.url_for("/page.html")]}
        cfg = kit_config(tmp_path, host, sources={"r": ("reviews", opts)})
        first = kit_run(cfg).sources[0]
        assert first.new == 3 and first.status == "partial" and "missing.csv: HTTP 404" in first.errors[0]
        second = kit_run(cfg).sources[0]
        assert second.read == 0 and log == [None, '"v1"']
    finally:
        server.clear()
        server.stop()


def test_bench_corpus_reviews(tmp_path):
    c = make_corpus(tmp_path / "c", 3000, 5)
    mapping = {"id": "id", "rating": "rating", "scale": "rating_scale", "title": "title", "body": "text", "published": "created_ms", "language": "language",
               "author_name": "user.display_name", "author_handle": "user.screen_name", "author_url": "user.profile_url", "product": "product.name",
               "product_id": "product.sku", "helpful_votes": "helpful_count"}
    recs = read(c, files=["reviews/reviews.csv"], platform="shop")[0] + read(c, files=["reviews/platform.jsonl"], platform="platform", mapping=mapping)[0] + read(c, pages=["reviews/pages"])[0]
    truth = json.loads((c / "crm" / "truth.json").read_text())
    expected = {i["key"]: i for i in truth["interactions"] if i["source"].startswith("reviews")}
    by = {r.native_id: r for r in recs}
    assert len(recs) == len(by) == len(expected) and set(by) == set(expected)
    for key, item in expected.items():
        value, lo, hi = item["rating"]
        assert by[key].rating.normalized == pytest.approx((value - lo) / (hi - lo)), key
        assert by[key].published.isoformat().replace("+00:00", "Z").startswith(item["published"])


def test_a_date_form_of_its_own_and_the_time_zone(tmp_path):
    (tmp_path / "de.csv").write_text("review_id,created_at,stars,title,body,reviewer_name\nD1,24.11.2026 10:00,2,Kaputt,Kam kaputt an,Jan\n")
    recs, rejected, _ = read(tmp_path, files=["de.csv"], platform="shop")
    assert not recs and "unrecognized date '24.11.2026 10:00'; set date_format" in rejected[0].reason
    recs, rejected, _ = read(tmp_path, files=["de.csv"], platform="shop", date_format=["%d.%m.%Y %H:%M"], timezone="Europe/Berlin")
    assert not rejected and recs[0].published.isoformat() == "2026-11-24T09:00:00+00:00"
    with pytest.raises(crmsync.ConfigError, match="unknown time zone 'Mars/Base'"):
        read(tmp_path, files=["de.csv"], platform="shop", timezone="Mars/Base")


def test_an_export_in_a_legacy_encoding(tmp_path):
    text = "review_id,created_at,stars,title,body,reviewer_name\nP1,2026-11-24,5,Świetny,Dostawa do Łodzi szybka,Łukasz Żółw\n"
    (tmp_path / "pl.csv").write_bytes(text.encode("iso-8859-2"))
    recs, _, src = read(tmp_path, files=["pl.csv"], platform="shop")
    assert recs[0].title != "Świetny" and any("by guess" in n for n in src.notes), "a wrong guess is said in the run report"
    recs, _, src = read(tmp_path, files=["pl.csv"], platform="shop", encoding="iso-8859-2")
    assert (recs[0].title, recs[0].author.name) == ("Świetny", "Łukasz Żółw") and not src.notes


def test_rows_quarantined_for_a_date_replay_once_date_format_is_set(tmp_path):
    import json

    from click.testing import CliRunner

    from crmsync.cli import create_cli

    (tmp_path / "de.csv").write_text("review_id,created_at,stars,title,body,reviewer_name\nD1,24.11.2026 10:00,2,Kaputt,Kam kaputt an,Jan\n")
    cfg = tmp_path / "crmsync.toml"
    cfg.write_text('[sources.shop]\nplugin = "reviews"\nfiles = ["de.csv"]\nplatform = "shop"\n')
    cli = create_cli()
    assert CliRunner().invoke(cli, ["-c", str(cfg), "run"]).exit_code == 1
    cfg.write_text(cfg.read_text() + 'date_format = ["%d.%m.%Y %H:%M"]\ntimezone = "Europe/Berlin"\n')
    r = CliRunner().invoke(cli, ["-c", str(cfg), "quarantine", "replay", "--all"])
    assert r.exit_code == 0 and "1 of 1 replayed" in r.output
    out = CliRunner().invoke(cli, ["-c", str(cfg), "export"]).output
    assert [json.loads(line)["published"] for line in out.splitlines()] == ["2026-11-24T09:00:00Z"]


def test_an_export_read_from_its_file_that_fails_whole_is_quarantined_with_its_bytes(tmp_path, monkeypatch):
    """Exports are read from their path a line at a time, never held whole; when reading
    one fails as a whole, its quarantine entry still holds the file, for replay."""
    import crmsync_reviews.source as source

    body = "id,rating,body\n1,5,great\n2,1,broken\n"
    (tmp_path / "r.csv").write_text(body, encoding="utf-8")
    got, bad, _ = read(tmp_path, files=["r.csv"])
    assert [r.body_text for r in got] == ["great", "broken"] and bad == []

    def broken(lines):
        next(iter(lines))
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(source.crmsync, "read_csv", broken)
    got, bad, _ = read(tmp_path, files=["r.csv"])
    assert got == [] and [(b.ref, b.raw) for b in bad] == [(str(tmp_path / "r.csv"), body.encode())]
