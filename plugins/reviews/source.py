"""The ``reviews`` source: review exports (CSV, JSON, JSON Lines) and schema.org markup in HTML pages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crmsync

from . import pages as schemaorg
from .dates import parse_date
from .exports import Entry, json_entries, jsonl_entries
from .fields import body_fields, get_path, head_bytes, keys_of, number, plain_text
from .presets import FIELDS, PRESETS, Preset, detect

PARSER_VERSION = "2"
EXPORT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PAGE_SUFFIXES = (".html", ".htm", ".xhtml")
class ReviewsSource(crmsync.Source):
    """Product reviews from platform exports and schema.org markup, on one rating scale."""

    name = "reviews"
    channel = "review"
    description = "Reviews from Trustpilot, Google Business, App Store, Google Play, Yelp, Amazon and generic exports, and schema.org pages."
    config_schema = {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Exports (.csv, .json, .jsonl): paths, directories or http(s) URLs."},
            "on_delete": {"type": "string", "enum": ["keep", "propagate"], "default": "keep", "description": "A review gone from a later export of the same file: keep it everywhere (an export may be partial), or propagate: mark it deleted and have the sinks delete it."},
            "pages": {"type": "array", "items": {"type": "string"}, "default": [], "description": "HTML product pages with schema.org Review markup: paths, directories or URLs."},
            "preset": {"type": "string", "enum": ["auto", *sorted(PRESETS)], "default": "auto", "description": "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())},
            "platform": {"type": "string", "description": "Platform name that scopes review ids (default: the preset's name; 'web' for pages)."},
            "scale": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2, "description": "[worst, best] of the export's ratings (default: the preset's, else [1, 5])."},
            "mapping": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in FIELDS},
                "additionalProperties": False,
                "default": {},
                "description": "Column (CSV) or dotted key (JSON) per field, over the preset's. 'scale' may name a column holding 'lo-hi' (e.g. '0-10').",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30, "description": "Seconds per request (URL inputs)."},
            "max_bytes": {"type": "integer", "minimum": 1, "default": 200 * 1024 * 1024, "description": "Refuse an input larger than this (bytes)."},
            "retries": {"type": "integer", "minimum": 1, "default": 4, "description": "Attempts per URL on transient errors (timeouts, 429, 5xx)."},
            "retry_max_wait": {"type": "number", "minimum": 0, "default": 30, "description": "Longest wait between attempts (seconds)."},
            "block_private_addresses": {"type": "boolean", "default": False, "description": "Refuse URLs that resolve to private, loopback or link-local addresses."},
            "ca_file": {"type": "string", "description": "A CA bundle (PEM) for HTTPS inputs with a private CA."},
            "encoding": {"type": "string", "description": "The exports' encoding (utf-8, cp1252, iso-8859-2, utf-16, ...); default: by BOM, else UTF-8, else Windows-1252 as a guess the run report names."},
            "date_format": {"type": "array", "items": {"type": "string"}, "default": [], "description": "strptime formats tried first for dates, e.g. [\"%d.%m.%Y %H:%M\"] for 24.11.2026 10:00."},
            "timezone": {"type": "string", "default": "UTC", "description": "Time zone of dates without one (IANA name, e.g. Europe/Berlin)."},
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.config["files"] and not self.config["pages"]:
            msg = "configure 'files' (exports) or 'pages' (HTML with schema.org reviews)"
            raise crmsync.ConfigError(msg, plugin=self.instance)
        self._fetcher: crmsync.Fetcher | None = None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            self.tz = ZoneInfo(self.config["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"key 'timezone': unknown time zone {self.config['timezone']!r} (an IANA name such as UTC or Europe/Berlin)"
            raise crmsync.ConfigError(msg, plugin=self.instance) from None
        self.formats = tuple(self.config["date_format"])

    def preflight(self) -> list[str]:
        if self.config.get("encoding"):
            import codecs

            try:
                codecs.lookup(self.config["encoding"])
            except LookupError:
                msg = f"key 'encoding': unknown encoding {self.config['encoding']!r}"
                raise crmsync.ConfigError(msg, plugin=self.instance) from None
        found = 0
        for key, suffixes in (("files", tuple(EXPORT_SUFFIXES)), ("pages", PAGE_SUFFIXES)):
            try:
                found += len(self._expand(self.config[key], suffixes))
            except crmsync.FatalError as exc:
                msg = f"key {key!r}: {exc.message}"
                raise crmsync.ConfigError(msg, plugin=self.instance) from None
        return [f"{found} review input(s)"]

    # inputs ---------------------------------------------------------------
    def _expand(self, entries: list[str], suffixes: tuple[str, ...]) -> list[str | Path]:
        out: list[str | Path] = []
        for entry in entries:
            if entry.startswith(("http://", "https://")):
                out.append(entry)
                continue
            p = self.resolve_path(entry)
            if p.is_dir():
                out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes))
            elif p.is_file():
                out.append(p)
            else:
                msg = f"review input {p} does not exist"
                raise crmsync.FatalError(msg, plugin=self.instance)
        return out

    def _fetch(self, url: str, st: dict[str, Any]) -> bytes | None:
        if self._fetcher is None:
            c = self.config
            self._fetcher = crmsync.Fetcher(timeout=c["timeout"], max_bytes=c["max_bytes"], attempts=c["retries"], max_wait=c["retry_max_wait"], block_private=c["block_private_addresses"], verify=str(self.resolve_path(c["ca_file"])) if c.get("ca_file") else True)
        res = self._fetcher.fetch(st.get("moved_to") or url, etag=st.get("etag"), last_modified=st.get("last_modified"))
        if res.moved_to:
            st["moved_to"] = res.moved_to
            self.note(f"{url} moved permanently to {res.moved_to}")
        if res.etag:
            st["etag"] = res.etag
        if res.last_modified:
            st["last_modified"] = res.last_modified
        return None if res.status == 304 else res.body

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        state = state or {}
        out: dict[str, Any] = {
            "files": dict(state.get("files", {})),
            "urls": {k: dict(v) for k, v in state.get("urls", {}).items()},
            "aggregates": dict(state.get("aggregates", {})),
            "ids": dict(state.get("ids", {})) if self.config["on_delete"] == "propagate" else {},
        }
        targets = [(t, "export") for t in self._expand(self.config["files"], tuple(EXPORT_SUFFIXES))]
        targets += [(t, "page") for t in self._expand(self.config["pages"], PAGE_SUFFIXES)]
        try:
            for target, what in targets:
                ref = str(target)
                if isinstance(target, Path):
                    mark = self.state_key(target)  # survives moving the project
                    st = target.stat()
                    sig = f"{st.st_size}:{st.st_mtime_ns}"
                    if out["files"].get(mark, out["files"].get(ref)) == sig:
                        continue
                    # an export is read from its file a line at a time (57 MB at 1M reviews
                    # would sit in the worker as bytes); a page is small and parsed whole
                    data = target if what == "export" else target.read_bytes()
                else:
                    url_state = out["urls"].setdefault(ref, {})
                    try:
                        data = self._fetch(ref, url_state)
                    except crmsync.FetchError as exc:
                        self.error(f"{ref}: {exc}")
                        continue
                    if data is None:
                        yield crmsync.Checkpoint(out)
                        continue
                    digest = hashlib.sha256(data).hexdigest()
                    if url_state.get("digest") == digest:
                        continue
                    sig = digest
                work = self._page(ref, data, out["aggregates"]) if what == "page" else self._export(ref, data)
                guarded = self.guard(ref, data, work)
                if self.config["on_delete"] == "propagate" and what != "page":
                    yield from self._with_takedowns(self.state_key(target) if isinstance(target, Path) else ref, guarded, out["ids"])
                else:
                    yield from guarded
                if isinstance(target, Path):
                    out["files"].pop(ref, None)  # a 0.1 bookmark's absolute name
                    out["files"][mark] = sig
                else:
                    out["urls"][ref]["digest"] = sig
                yield crmsync.Checkpoint(out)
        finally:
            if self._fetcher is not None:
                self._fetcher.close()
                self._fetcher = None

    def _with_takedowns(self, mark: str, records: Iterator[crmsync.Record], ids: dict[str, list[str]]) -> Iterator[crmsync.Record]:
        """``records`` of one export, then a :class:`~crmsync.Takedown` for each review the
        export's last read had and this one lacks. None while any row of it is quarantined:
        the missing review may be in that row."""
        seen: set[str] = set()
        rejected = 0
        for rec in records:
            if isinstance(rec, crmsync.Interaction):
                seen.add(rec.interaction_id)
            elif isinstance(rec, crmsync.Rejected):
                rejected += 1
            yield rec
        before = set(ids.get(mark, []))
        if rejected:
            if before - seen:
                self.note(f"{mark}: {len(before - seen)} review(s) missing from this export are not taken down while {rejected} row(s) are quarantined")
            seen |= before
        else:
            for iid in sorted(before - seen):
                yield crmsync.Takedown(iid, f"no longer in {mark}")
        ids[mark] = sorted(seen)

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        path = ref.rsplit(":", 1)[0]
        kind = EXPORT_SUFFIXES.get(Path(path.split("?", 1)[0]).suffix.lower(), "csv")
        if kind == "csv":
            yield from self.guard(ref, raw, self._export(path, raw, first_line=int(ref.rsplit(":", 1)[1]) if ref.rsplit(":", 1)[-1].isdigit() else None))
        else:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                yield self.reject(ref, f"not valid JSON: {exc}", raw)
                return
            preset = self._preset(keys_of(record), "jsonl")
            yield from self._review(ref, record, preset, raw)

    # exports ------------------------------------------------------------------
    def _preset(self, keys: set[str], fmt: str) -> Preset:
        name = self.config["preset"]
        return PRESETS[detect(keys, fmt) if name == "auto" else name]

    def _text(self, ref: str, data: bytes) -> str:
        """An export's text in the configured encoding (or found by BOM, UTF-8, a
        Windows-1252 guess: the run report says which when it was a guess or lossy)."""
        return self._decoded(ref, lambda encoding: crmsync.decode_export(data, encoding)).text

    def _lines(self, ref: str, data: bytes | Path) -> Iterator[str]:
        """:meth:`_text`, a line at a time."""
        return self._decoded(ref, lambda encoding: crmsync.export_lines(data, encoding))[0]

    def _decoded(self, ref: str, decode: Any) -> Any:
        """``decode(encoding)`` (a decoding, or lines and their decoding) with the
        configured encoding; an unknown one is a configuration error."""
        try:
            result = decode(self.config.get("encoding"))
        except LookupError:
            msg = f"key 'encoding': unknown encoding {self.config['encoding']!r}"
            raise crmsync.ConfigError(msg, plugin=self.instance) from None
        decoded = result[1] if isinstance(result, tuple) else result
        if decoded.guessed or decoded.replaced:
            self.note(f"{ref}: {decoded.describe()}")
        return result

    def _export(self, ref: str, data: bytes | Path, first_line: int | None = None) -> Iterator[crmsync.Record]:
        """One export's reviews, from its bytes or (a local file) its path."""
        kind = EXPORT_SUFFIXES.get(Path(ref.split("?", 1)[0]).suffix.lower())
        if kind is None or ref.startswith(("http://", "https://")):
            prefix = head_bytes(data, 200000)
            head = (data if isinstance(data, bytes) else prefix).lstrip()[:1]
            kind = "json" if head == b"[" or (head == b"{" and b"\n{" not in prefix) else ("jsonl" if head == b"{" else "csv")
        if kind == "csv":
            # a line at a time: the export's whole text (and its lines) would be held at once
            self.expect((self.expected or 0) + max(0, crmsync.count_lines(data)[0] - 1))  # rows, about (quoted newlines aside)
            header, rows = crmsync.read_csv(self._lines(ref, data))
            preset = self._preset(set(header), "csv")
            header_line = crmsync.csv_line(header)
            for line, row in rows:
                where = f"{ref}:{first_line or line}"
                raw = (header_line + crmsync.csv_line(row)).encode()
                if row.problem or len(row) != len(header):
                    yield self.reject(where, row.problem or f"row has {len(row)} fields, the header {len(header)}", raw)
                    continue
                yield from self.guard(where, raw, self._review(where, dict(zip(header, row, strict=True)), preset, raw))
            return
        if kind == "jsonl":
            count, ends_in_newline = crmsync.count_lines(data)
            self.expect((self.expected or 0) + count + (0 if ends_in_newline else 1))
            yield from self._entries(jsonl_entries(ref, self._lines(ref, data)), "jsonl")
            return
        if isinstance(data, Path):  # one JSON document: read whole
            data = data.read_bytes()
        try:
            fmt, entries = json_entries(ref, self._text(ref, data))
        except json.JSONDecodeError as exc:
            yield self.reject(ref, f"not valid JSON: {exc}", data)
            return
        yield from self._entries(entries, fmt)

    def _entries(self, entries: Iterator[Entry], fmt: str) -> Iterator[crmsync.Record]:
        """A JSON export's records as reviews (the preset from the first one's keys),
        each quarantined alone when it is not one."""
        preset = None
        for entry in entries:
            if entry.problem is not None:
                yield self.reject(entry.where, entry.problem, entry.raw)
                continue
            if preset is None:
                preset = self._preset(keys_of(entry.record), fmt)
            raw = entry.raw.encode()
            yield from self.guard(entry.where, raw, self._review(entry.where, entry.record, preset, raw))

    def _scale(self, record: Any, preset: Preset, mapping: dict[str, str]) -> tuple[float, float]:
        spec = get_path(record, mapping.get("scale"))
        if spec is not None:
            lo, _, hi = str(spec).partition("-")
            return float(lo), float(hi)
        if get_path(record, mapping.get("best")) is not None:
            return float(get_path(record, mapping.get("worst")) or 1), float(get_path(record, mapping["best"]))
        if self.config.get("scale"):
            return tuple(self.config["scale"])  # type: ignore[return-value]
        return preset.scale

    def _review(self, ref: str, record: dict[str, Any], preset: Preset, raw: bytes, platform: str | None = None) -> Iterator[crmsync.Record]:
        m = {**preset.fields, **self.config["mapping"]} if platform is None else dict(preset.fields)
        platform = platform or self.config.get("platform") or preset.name

        def get(field: str) -> Any:
            return get_path(record, m.get(field))

        try:
            rating = None
            if get("rating") is not None:
                worst, best = self._scale(record, preset, m)
                rating = crmsync.Rating(value=number(get("rating")), best=best, worst=worst)
            body = get("body")
            if rating is None and not body:
                yield self.reject(ref, "review has neither a rating nor text", raw)
                return
            product_id = get("product_id") or get("product")
            scope = f"{platform}/{product_id or ''}"
            native = get("id")
            if native is None:
                basis = json.dumps([get("author_name"), get("author_handle"), str(get("published")), body, get("title"), str(get("rating"))], default=str)
                native = "sha256:" + hashlib.sha256(basis.encode()).hexdigest()
            native = str(native)
            handle = get("author_handle")
            author = None
            if get("author_name") or get("author_email") or get("author_url") or handle:
                author = crmsync.Identity(
                    name=get("author_name"),
                    emails=[str(get("author_email"))] if get("author_email") else [],
                    profile_urls=[str(get("author_url"))] if get("author_url") else [],
                    handles=[f"{platform}:{handle}"] if handle else [],
                )
            votes = get("helpful_votes")
            review = self.interaction(
                native_id=native,
                scope=scope,
                kind="review",
                url=get("url"),
                title=plain_text(get("title")),
                **body_fields(body),
                language=get("language"),
                published=parse_date(get("published"), self.formats, self.tz),
                updated=parse_date(get("updated"), self.formats, self.tz),
                author=author,
                rating=rating,
                item_reviewed=crmsync.ItemReviewed(name=str(get("product")) if get("product") else None, id=str(product_id) if product_id else None, url=get("product_url")),
                engagement={"helpful_votes": int(str(votes).replace(",", ""))} if votes not in (None, "") else {},
                extra={"platform": platform},
                provenance=crmsync.Provenance(source_url=ref.rsplit(":", 1)[0], record_ref=ref, raw_hash=hashlib.sha256(raw).hexdigest(), parser=f"crmsync_reviews/{preset.name}", parser_version=PARSER_VERSION),
            )
        except Exception as exc:  # noqa: BLE001 - one review that cannot be read never fails the export (no I/O here)
            yield self.reject(ref, f"cannot read review: {exc if isinstance(exc, (ValueError, TypeError)) else crmsync.describe_failure(exc)}", raw)
            return
        yield review
        reply = get("reply")
        if reply:
            yield self._reply(review, str(reply), get("reply_date"), platform)

    def _reply(self, review: crmsync.Interaction, text: str, when: Any, platform: str) -> crmsync.Interaction:
        try:
            published = parse_date(when, self.formats, self.tz)
        except ValueError:
            published = None
        return self.interaction(
            native_id=f"{review.native_id}#reply",
            scope=review.scope,
            kind="reply",
            **body_fields(text),
            published=published,
            author=crmsync.Identity(name=f"{platform} business reply", kind="organization"),
            in_reply_to=review.interaction_id,
            thread_id=review.interaction_id,
            item_reviewed=review.item_reviewed,
            extra={"platform": platform, "business_reply": True},
            provenance=review.provenance,
        )

    # schema.org pages -----------------------------------------------------------
    def _page(self, ref: str, data: bytes, aggregates: dict[str, Any]) -> Iterator[crmsync.Record]:
        html = crmsync.decode_text(data)
        base = ref if ref.startswith(("http://", "https://")) else None
        try:
            reviews, aggs = schemaorg.extract(html, base)
        except Exception as exc:  # noqa: BLE001 - a page extruct cannot read is quarantined
            yield self.reject(ref, f"cannot extract schema.org data: {type(exc).__name__}: {exc}", data)
            return
        platform = self.config.get("platform") or "web"
        for agg, item in schemaorg.main_aggregate(aggs, reviews, ref):
            key = f"{platform}/{schemaorg.text(item.get('sku')) or schemaorg.text(item.get('productID')) or schemaorg.text(item.get('name')) or ref}"
            try:
                value = number(schemaorg.text(agg.get("ratingValue")))
                best = float(schemaorg.text(agg.get("bestRating")) or 5)
                worst = float(schemaorg.text(agg.get("worstRating")) or 1)
                rating = crmsync.Rating(value=value, best=best, worst=worst)
            except (TypeError, ValueError):
                continue
            aggregates[key] = {
                "item": schemaorg.text(item.get("name")),
                "url": schemaorg.text(item.get("url")) or ref,
                "rating": rating.value, "best": rating.best, "worst": rating.worst, "normalized": rating.normalized,
                # ratings, not written reviews, are what the average is over
                "count": schemaorg.text(agg.get("ratingCount")) or schemaorg.text(agg.get("reviewCount")),
                "observed": self.context.run_started.isoformat(),
            }
        for n, (node, parent) in enumerate(reviews, 1):
            where = f"{ref}#review{n}"
            raw = json.dumps(node, ensure_ascii=False, default=str).encode()
            item = schemaorg.item_of(node, parent)
            author = schemaorg._first(node.get("author"))
            author = author if isinstance(author, dict) else ({"name": author} if author else {})
            rr = schemaorg._first(node.get("reviewRating"))
            rr = rr if isinstance(rr, dict) else {}
            record = {
                "id": schemaorg.text(node.get("@id")) or schemaorg.text(node.get("url")),
                "rating": schemaorg.text(rr.get("ratingValue")),
                "best": schemaorg.text(rr.get("bestRating")),
                "worst": schemaorg.text(rr.get("worstRating")),
                "title": schemaorg.text(node.get("name")) or schemaorg.text(node.get("headline")),
                "body": schemaorg.text(node.get("reviewBody")) or schemaorg.text(node.get("description")),
                "author_name": schemaorg.text(author.get("name")),
                "author_url": schemaorg.text(author.get("url")) or schemaorg.text(author.get("sameAs")),
                "published": schemaorg.text(node.get("datePublished")),
                "updated": schemaorg.text(node.get("dateModified")),
                "language": schemaorg.text(node.get("inLanguage")),
                "product": schemaorg.text(item.get("name")),
                "product_id": schemaorg.text(item.get("sku")) or schemaorg.text(item.get("productID")) or schemaorg.text(item.get("gtin13")),
                "product_url": schemaorg.text(item.get("url")),
                "url": schemaorg.text(node.get("url")),
            }
            if record["rating"] is not None and record["best"] is None:
                record["best"], record["worst"] = "5", record["worst"] or "1"  # schema.org defaults
            page_preset = Preset("schema.org", ("html",), frozenset(), {f: f for f in record}, records=None)
            yield from self._review(where, record, page_preset, raw, platform=platform)
