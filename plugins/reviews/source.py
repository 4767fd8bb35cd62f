"""The ``reviews`` source: review exports (CSV, JSON Lines) with a field mapping."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import crmsync

PARSER_VERSION = "1"

#: Default mapping: our field -> column (CSV) or dotted key (JSON Lines).
DEFAULT_MAPPING = {
    "id": "review_id",
    "rating": "stars",
    "title": "title",
    "body": "body",
    "author_name": "reviewer_name",
    "author_email": "reviewer_email",
    "author_url": "reviewer_url",
    "published": "created_at",
    "product": "product",
    "product_id": "product_id",
    "url": "url",
    "reply": "reply",
    "helpful_votes": "helpful_votes",
    "language": "language",
}
MAPPING_KEYS = sorted(DEFAULT_MAPPING)


class ReviewsSource(crmsync.Source):
    """Product reviews from CSV or JSON Lines exports."""

    name = "reviews"
    channel = "review"
    description = "Product reviews from CSV and JSON Lines exports, ratings normalized to 0..1."
    config_schema = {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "CSV (.csv) or JSON Lines (.jsonl) export files."},
            "platform": {"type": "string", "default": "generic", "description": "Platform name; scopes review ids (platform/product)."},
            "scale": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2, "default": [1, 5], "description": "[worst, best] rating of the export."},
            "mapping": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in MAPPING_KEYS},
                "additionalProperties": False,
                "default": {},
                "description": "Column (CSV) or dotted key (JSONL) per field; unset fields use the defaults.",
            },
        },
        "required": ["files"],
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        seen: dict[str, str] = dict((state or {}).get("files", {}))
        for entry in self.config["files"]:
            path = self.resolve_path(entry)
            if not path.is_file():
                msg = f"review export {path} does not exist"
                raise crmsync.FatalError(msg, plugin=self.instance)
            st = path.stat()
            sig = f"{st.st_size}:{st.st_mtime_ns}"
            if seen.get(str(path)) == sig:
                continue
            yield from self._parse_file(path, path.read_bytes())
            seen[str(path)] = sig
            yield crmsync.Checkpoint({"files": dict(seen)})

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        if ref.rpartition(":")[0].lower().endswith((".jsonl", ".ndjson")):
            try:
                rec = json.loads(raw)
            except ValueError as exc:
                yield self.reject(ref, f"not valid JSON: {exc}", raw)
                return
            yield from self._row(ref, rec, raw)
            return
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline=""))
        for rec in reader:
            if None in rec or any(v is None for v in rec.values()):
                yield self.reject(ref, "row has a different number of fields than the header", raw)
                continue
            yield from self._row(ref, rec, raw)

    def _parse_file(self, path: Path, data: bytes) -> Iterator[crmsync.Record]:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for n, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                ref = f"{path}:{n}"
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    yield self.reject(ref, f"line {n} is not valid JSON: {exc}", line)
                    continue
                yield from self._row(ref, rec, line)
            return
        text = data.decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = _csv_line(reader.fieldnames or [])
        for rec in reader:
            ref = f"{path}:{reader.line_num}"
            values = [v for k, v in rec.items() if k is not None and v is not None] + list(rec.get(None) or [])
            raw = (header + _csv_line(values)).encode()
            if None in rec or any(v is None for v in rec.values()):
                yield self.reject(ref, "row has a different number of fields than the header", raw)
                continue
            yield from self._row(ref, rec, raw)

    def _row(self, ref: str, rec: dict[str, Any], raw: bytes) -> Iterator[crmsync.Record]:
        m = {**DEFAULT_MAPPING, **self.config["mapping"]}

        def get(field: str) -> Any:
            value: Any = rec
            for part in m[field].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return None if value == "" else value

        try:
            worst, best = self.config["scale"]
            rating = None
            if get("rating") is not None:
                rating = crmsync.Rating(value=float(get("rating")), best=best, worst=worst)
            body = get("body")
            if rating is None and not body:
                yield self.reject(ref, "review has neither a rating nor text", raw)
                return
            product_id = get("product_id") or get("product")
            scope = f"{self.config['platform']}/{product_id or ''}"
            native = get("id")
            if native is None:
                native = "sha256:" + hashlib.sha256(json.dumps([get("author_name"), get("published"), body], default=str).encode()).hexdigest()
            native = str(native)
            author = None
            if get("author_name") or get("author_email") or get("author_url"):
                author = crmsync.Identity(name=get("author_name"), emails=[get("author_email")] if get("author_email") else [], profile_urls=[get("author_url")] if get("author_url") else [])
            review = self.interaction(
                native_id=native,
                scope=scope,
                kind="review",
                url=get("url"),
                title=get("title"),
                body_text=str(body) if body is not None else None,
                language=get("language"),
                published=_date(get("published")),
                author=author,
                rating=rating,
                item_reviewed=crmsync.ItemReviewed(name=get("product"), id=str(product_id) if product_id else None),
                engagement={"helpful_votes": int(get("helpful_votes"))} if get("helpful_votes") is not None else {},
                provenance=crmsync.Provenance(source_url=ref.rsplit(":", 1)[0], record_ref=ref, raw_hash=hashlib.sha256(raw).hexdigest(), parser="crmsync_reviews", parser_version=PARSER_VERSION),
            )
        except (ValueError, TypeError) as exc:
            yield self.reject(ref, f"cannot read review: {exc}", raw)
            return
        yield review
        reply = get("reply")
        if reply:
            yield self.interaction(
                native_id=f"{native}#reply",
                scope=scope,
                kind="reply",
                body_text=str(reply),
                author=crmsync.Identity(name=self.config["platform"] + " business reply", kind="organization"),
                in_reply_to=review.interaction_id,
                thread_id=review.interaction_id,
                item_reviewed=review.item_reviewed,
                provenance=review.provenance,
            )


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        ts = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(ts, UTC)
    s = str(value).strip()
    if s.isdigit():
        return _date(int(s))
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"unrecognized date {s!r}"
        raise ValueError(msg) from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
