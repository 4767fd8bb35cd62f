#!/usr/bin/env python3
"""What crmsync reads from feeds, field by field, against feedparser, and how fast.

The corpus is feedparser's own test fixtures (public: github.com/kurtmckee/feedparser,
``tests/``), about 1,800 small documents that each exercise one way feeds are
written: every RSS/Atom/RDF/CDF/JSON Feed version, namespaces, encodings, dates,
authors, relative links, ill-formed XML. They are read from a local copy and
never copied into this repository.

For every document both parsers read, each field feedparser fills in (entry id,
link, title, author name/email/URL, published, updated, content, summary, tags,
enclosures; feed title, link, language) is compared with what crmsync's rss source
turns the same document into (the records it would store), after normalizing
text (HTML to text, whitespace) and dates (to the second, UTC). Agreement is the
share of those fields crmsync reproduces; misses are grouped by fixture folder and
field so the gaps are visible.

Speed, in the same run and process: feedparser.parse over every document vs
crmsync's parse and normalize (parse_feed plus building the interactions), on the
fixture corpus and, when ../shared is beside the project, on the generated corpus
of realistic feeds.

    python bench/bench_feed_fidelity.py --feedparser PATH   # a checkout or bare clone

Writes bench/results/feed-fidelity.{json,md}.
"""

from __future__ import annotations

import argparse
import calendar
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS_TOOL = ROOT.parent / "shared" / "bench" / "make_corpus.py"
FOLDERS = ("wellformed", "illformed", "encoding", "json")


def fixtures(repo: Path, into: Path) -> list[Path]:
    """The fixture documents of a feedparser checkout or bare clone, under ``into``."""
    if (repo / "tests").is_dir():
        base = repo / "tests"
    else:
        raw = subprocess.run(["git", "--git-dir", str(repo), "archive", "HEAD", "tests"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            tar.extractall(into, filter="data")
        base = into / "tests"
    out = []
    for folder in FOLDERS:
        out += sorted(p for p in (base / folder).rglob("*") if p.suffix in (".xml", ".json", ".rdf", ".atom", ".rss"))
    return out


#: Fields where feedparser's answer is a quirk of its own rather than what the feed says,
#: or needs HTTP headers this bench does not send. Reported apart: agreement is given
#: over all fields and over the fields feedparser gets right.
FEEDPARSER_QUIRKS = {
    "entry_authors_": "several authors: feedparser's author is the last one, crmsync's the first",
    "_link_priority.xml": "feedparser takes an enclosure's URL as the entry's link over its alternate link",
    "entry_link_rel_enclosure_no_href.xml": "feedparser takes an enclosure's URL as the entry's link over its alternate link",
    "entry_id_with_attributes.xml": "feedparser makes a non-URL id ('right') the entry's link",
    "node_precedence/atom10_id.xml": "feedparser makes a non-URL id the entry's link",
    "base/http_": "the fixture's expectation needs the HTTP headers feedparser's test harness sends",
    "lang/http_": "the fixture's expectation needs the HTTP headers feedparser's test harness sends",
    "item_category_image.xml": "feedparser takes the <title> of an <image> inside a <category> as the item's title",
    "entry_content_div_escaped_markup.xml": "feedparser unescapes escaped markup twice (type=html holding an XHTML div)",
    "entry_content_text_plain_brackets.xml": "feedparser's summary drops '<blink>' from text/plain content (it is text, not a tag)",
    "entry_content_mode_base64.xml": "feedparser's summary reads untyped Base64 content as HTML, its content as text",
    "item_dc_date": "feedparser reports dc:date as 'updated'; crmsync as the publication date",
    "entry_updated_multiple_values.xml": "several <modified>/<updated>: feedparser keeps one, crmsync the other",
    "bozo_linenoise.xml": "feedparser drops '<>' from line noise in a description",
    "item_description_not_a_doctype.xml": "feedparser keeps '<!' of an unfinished declaration as text; HTML5 drops it",
}


def _quirk(path: Path, base: Path) -> str | None:
    rel = str(path.relative_to(base))
    return next((why for key, why in FEEDPARSER_QUIRKS.items() if key in rel), None)


def _text(value: Any, kind: str | None = "text/html") -> str | None:
    """Text of a value: HTML turned to text (feedparser's values are HTML unless their
    detail says text/plain); whitespace collapsed."""
    import crmsync

    if value is None:
        return None
    text = crmsync.html_to_text(str(value)) if kind != "text/plain" else str(value)
    return " ".join(text.split()) or None


def _plain(value: Any) -> str | None:
    """Text crmsync already made plain (title, body_text): whitespace collapsed only."""
    return " ".join(str(value).split()) or None if value else None


#: Fixtures where crmsync differs from feedparser on purpose, with why. Their fields are
#: counted apart ("by design"), not as agreement or misses.
BY_DESIGN = {
    "_crazy.xml": "feedparser keeps the <title> of an embedded <head> and script source as text; crmsync drops both (no script text in plain text)",
    "xml_malicious_comment.xml": "an unclosed HTML comment: HTML5 (crmsync, browsers) hides what follows, feedparser's SGML parser shows it",
    "_script_nested_cdata.xml": "a CDATA marker inside CDATA: both read junk, differently",
    "entry_content_iframe.xml": "markup inside <iframe> is text in HTML5 (crmsync, browsers), markup to feedparser",
    "entity_in_doctype.xml": "a document declaring entities is refused (no entity expansion, ever)",
    "rss_item_link_corrupted_ampersands.xml": "the document ends inside its closing tag: cut short, so none of it is kept (a cut response must not become records)",
}


def _when(struct: Any) -> str | None:
    if not struct:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _ours_when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value else None


def reference(parsed: Any) -> dict[str, Any]:
    """The fields feedparser filled in, normalized."""
    fields: dict[str, Any] = {}
    f = parsed.feed
    for key in ("title", "link", "language"):
        if f.get(key):
            fields[f"feed.{key}"] = _text(f[key], (f.get("title_detail") or {}).get("type")) if key == "title" else f[key]
    for n, e in enumerate(parsed.entries):
        p = f"entry{n}."
        author = e.get("author_detail") or {}
        content = (e.get("content") or [{}])[0]
        values = {
            "id": e.get("id"),
            "link": e.get("link"),
            "title": _text(e.get("title"), (e.get("title_detail") or {}).get("type")),
            "author.name": author.get("name"),
            "author.email": author.get("email"),
            "author.url": author.get("href"),
            # dict.get: feedparser's own get() answers "updated" with "published" when the feed has none
            "published": _when(dict.get(e, "published_parsed")),
            "updated": _when(dict.get(e, "updated_parsed")),
            "content": _text(content.get("value"), content.get("type")),
            "summary": _text(e.get("summary"), (e.get("summary_detail") or {}).get("type")),
            "tags": sorted({t.get("term") for t in e.get("tags", []) if t.get("term")}) or None,
            "enclosures": sorted({x.get("href") for x in e.get("enclosures", []) if x.get("href")}) or None,
        }
        fields.update({p + k: v for k, v in values.items() if v})
    return fields


def ours(data: bytes, location: str) -> tuple[dict[str, Any], Any]:
    """What crmsync's rss source makes of the document, in the same field names."""
    import crmsync
    from crmsync_rss.parse import FeedError, parse_feed
    from crmsync_rss.source import RssSource

    fields: dict[str, Any] = {}
    try:
        feed = parse_feed(data)
    except FeedError:
        return fields, None
    for key in ("title", "link", "language"):
        value = getattr(feed, key)
        if value:
            fields[f"feed.{key}"] = _text(value) if key == "title" else value  # the parser's feed title is HTML
    src = RssSource("bench", {"feeds": [], "opml": [], "listen": {}}, crmsync.Context())
    records = [r for r in src._document(data, location, {}, None, http=False) if isinstance(r, crmsync.Interaction | crmsync.Rejected)]
    for n, rec in enumerate(records):
        if not isinstance(rec, crmsync.Interaction):
            continue
        p = f"entry{n}."
        a = rec.author
        values = {
            "id": rec.native_id,
            "link": rec.url,
            "title": _plain(rec.title),
            "author.name": a.name if a else None,
            "author.email": a.emails[0] if a and a.emails else None,
            "author.url": a.profile_urls[0] if a and a.profile_urls else None,
            "published": _ours_when(rec.published),
            "updated": _ours_when(rec.updated),
            "content": _plain(rec.body_text),
            "summary": _plain(rec.summary or rec.body_text),
            "tags": sorted(set(rec.tags)) or None,
            "enclosures": sorted({x.url for x in rec.attachments if x.url}) or None,
        }
        fields.update({p + k: v for k, v in values.items() if v})
    return fields, feed


def compare(files: list[Path], base: Path) -> dict[str, Any]:
    import feedparser

    total = agree = by_design = quirks = quirks_agree = 0
    misses: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes()
        ref = reference(feedparser.parse(data))
        got, _ = ours(data, str(path))
        group = str(path.relative_to(base).parent)
        if any(path.name.endswith(suffix) for suffix in BY_DESIGN):
            by_design += len(ref)
            continue
        quirk = _quirk(path, base)
        for key, want in ref.items():
            total += 1
            field = key.split(".", 1)[1] if key.startswith("entry") else key
            if quirk:
                quirks += 1
            if got.get(key) == want:
                agree += 1
                quirks_agree += bool(quirk)
            elif quirk:
                continue
            else:
                misses[f"{group} {field}"] += 1
                examples.setdefault(field, [])
                if len(examples[field]) < 5:
                    examples[field].append(f"{path.relative_to(base)}: feedparser {str(want)[:80]!r}, crmsync {str(got.get(key))[:80]!r}")
    right = total - quirks
    return {"fields": total, "by_design": by_design, "by_design_why": BY_DESIGN, "agree": agree, "agreement": round(agree / total, 4) if total else None,
            "feedparser_right": right, "agree_where_feedparser_right": agree - quirks_agree, "agreement_where_feedparser_right": round((agree - quirks_agree) / right, 4) if right else None,
            "quirk_fields": quirks, "quirks_why": FEEDPARSER_QUIRKS, "misses": dict(misses.most_common(40)), "examples": examples}


def speed(datas: list[bytes], repeat: int) -> dict[str, Any]:
    """CPU seconds (best of ``repeat``) for: feedparser.parse; crmsync's parser (bytes to
    entries, the same work); crmsync's parser plus normalization into interactions
    (sanitized HTML, plain text, ids, authors: what the rss source stores)."""
    import feedparser

    import crmsync
    from crmsync_rss.parse import FeedError, parse_feed
    from crmsync_rss.source import RssSource

    src = RssSource("bench", {"feeds": [], "opml": [], "listen": {}}, crmsync.Context())

    def ours_parse() -> int:
        n = 0
        for d in datas:
            try:
                n += len(parse_feed(d).entries)
            except FeedError:
                pass
        return n

    runs = {
        "feedparser": lambda: sum(len(feedparser.parse(d).entries) for d in datas),
        "crmsync_parse": ours_parse,
        "crmsync_parse_and_normalize": lambda: sum(1 for d in datas for r in src._document(d, "bench", {}, None, http=False) if isinstance(r, crmsync.Interaction)),
    }
    best = dict.fromkeys(runs, float("inf"))
    entries = dict.fromkeys(runs, 0)
    for _ in range(repeat):
        for name, fn in runs.items():
            t0 = time.process_time()
            entries[name] = fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {
        "documents": len(datas),
        "entries": entries,
        "cpu_seconds": {k: round(v, 3) for k, v in best.items()},
        "parser_speedup": round(best["feedparser"] / best["crmsync_parse"], 2),
        "with_normalization_speedup": round(best["feedparser"] / best["crmsync_parse_and_normalize"], 2),
    }


def generated_feeds(tmp: Path, entries: int) -> list[bytes]:
    if not CORPUS_TOOL.exists():
        return []
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--out", str(tmp / "c"), "--interactions", str(entries), "--seed", "7", "-q"], check=True, capture_output=True)
    return [p.read_bytes() for p in sorted((tmp / "c" / "feeds").iterdir()) if p.is_file()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feedparser", type=Path, required=True, help="a checkout or bare clone of github.com/kurtmckee/feedparser")
    ap.add_argument("--entries", type=int, default=5000, help="size of the generated corpus for the speed run (needs ../shared)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import feedparser

    with tempfile.TemporaryDirectory() as tmp:
        files = fixtures(args.feedparser, Path(tmp))
        base = Path(tmp) / "tests" if not (args.feedparser / "tests").is_dir() else args.feedparser / "tests"
        result: dict[str, Any] = {"feedparser_version": feedparser.__version__, "fixtures": len(files)}
        result["coverage"] = compare(files, base)
        result["speed_fixtures"] = speed([f.read_bytes() for f in files], args.repeat)
        gen = generated_feeds(Path(tmp), args.entries)
        if gen:
            result["speed_generated"] = speed(gen, args.repeat)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "feed-fidelity.json").write_text(json.dumps(result, indent=2) + "\n")
    cov = result["coverage"]
    lines = [
        f"# Feed fidelity against feedparser {result['feedparser_version']}",
        "",
        f"{result['fixtures']} fixture documents; {cov['fields']} fields feedparser fills in; crmsync agrees on {cov['agree']} ({cov['agreement']:.2%}).",
        f"Over the {cov['feedparser_right']} fields feedparser gets right ({cov['quirk_fields']} fields of fixtures where its answer is a quirk, or needs HTTP headers, set apart and listed in the JSON): crmsync agrees on {cov['agree_where_feedparser_right']} ({cov['agreement_where_feedparser_right']:.2%}).",
        f"Not counted: {cov['by_design']} fields of fixtures where crmsync differs on purpose ({'; '.join(f'{k}: {v}' for k, v in BY_DESIGN.items())}).",
        "",
        "| corpus (CPU s, best of runs) | documents | entries feedparser / crmsync | feedparser.parse | crmsync parse_feed | parser: crmsync faster | crmsync parse + normalize | with normalization: faster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("speed_fixtures", "speed_generated"):
        if key in result:
            s = result[key]
            c = s["cpu_seconds"]
            lines.append(
                f"| {key.removeprefix('speed_')} | {s['documents']} | {s['entries']['feedparser']} / {s['entries']['crmsync_parse']} | {c['feedparser']} | {c['crmsync_parse']} | "
                f"{s['parser_speedup']}x | {c['crmsync_parse_and_normalize']} | {s['with_normalization_speedup']}x |"
            )
    lines += ["", "Misses by fixture folder and field:", ""] + [f"- {k}: {v}" for k, v in cov["misses"].items()]
    (out / "feed-fidelity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    for field, ex in cov["examples"].items():
        print(f"\n{field}:")
        for line in ex:
            print("  " + line)


if __name__ == "__main__":
    main()
