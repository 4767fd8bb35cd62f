"""schema.org Review, Rating and AggregateRating embedded in HTML (JSON-LD, microdata, RDFa).

Extraction is extruct's (uniform output for the three syntaxes); this module
walks the result for reviews and aggregate ratings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("@type")
    items = t if isinstance(t, list) else [t]
    return {str(x).rsplit("/", 1)[-1] for x in items if x}


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _walk(node: Any, parent: dict[str, Any] | None) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parent)
        return
    if not isinstance(node, dict):
        return
    yield node, parent
    for key, value in node.items():
        if key in ("@context",):
            continue
        if isinstance(value, dict | list):
            yield from _walk(value, node if _types(node) else parent)


_SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")


def _short(key: str) -> str:
    for prefix in _SCHEMA_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _rdfa_tree(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """extruct's RDFa output is a flat graph of IRIs and ``@id`` links; nest it like JSON-LD."""
    by_id = {n.get("@id"): n for n in nodes if isinstance(n, dict) and n.get("@id")}
    referenced: set[str] = set()

    def expand(node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "@type":
                out[key] = [_short(t) for t in (value if isinstance(value, list) else [value])]
                continue
            if key == "@id":
                out[key] = value
                continue
            items = []
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "@value" in item:
                    items.append(item["@value"])
                elif isinstance(item, dict) and item.get("@id") in by_id and item["@id"] not in seen:
                    referenced.add(item["@id"])
                    items.append(expand(by_id[item["@id"]], seen | {item["@id"]}))
                elif isinstance(item, dict) and "@id" in item:
                    items.append(item["@id"])
                else:
                    items.append(item)
            out[_short(key)] = items[0] if len(items) == 1 else items
        return out

    expanded = [expand(n, frozenset({n.get("@id")})) for n in nodes if isinstance(n, dict)]
    # keep roots; nodes nested elsewhere are reached through their parents
    return [e for e, n in zip(expanded, nodes, strict=False) if n.get("@id") not in referenced]


def extract(html: str, base_url: str | None) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """``(reviews, aggregates)``: each review with the item node it belongs to,
    each AggregateRating with its item."""
    import extruct

    data = extruct.extract(html, base_url=base_url, syntaxes=["json-ld", "microdata", "rdfa"], uniform=True, errors="ignore")
    reviews, aggregates, seen = [], [], set()
    data["rdfa"] = _rdfa_tree(data.get("rdfa", []))
    for syntax in ("json-ld", "microdata", "rdfa"):
        for node, parent in _walk(data.get(syntax, []), None):
            kinds = _types(node)
            if "Review" in kinds:
                key = node.get("@id") or repr(sorted((k, repr(v)) for k, v in node.items()))
                if key in seen:
                    continue
                seen.add(key)
                reviews.append((node, parent))
            elif "AggregateRating" in kinds and parent is not None:
                aggregates.append((node, parent))
    return reviews, aggregates


def main_aggregate(aggregates: list[tuple[dict[str, Any], dict[str, Any]]], reviews: list[tuple[dict[str, Any], dict[str, Any] | None]], page_url: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The aggregate rating of the product the page is about (a page also rates related
    products, in carousels and "customers also bought"): the product whose URL is the
    page's, else the one the page's reviews are about, else the first one."""
    if len(aggregates) <= 1:
        return aggregates
    for agg, item in aggregates:
        if text(item.get("url")) and text(item.get("url")).rstrip("/") == page_url.rstrip("/"):  # type: ignore[union-attr]
            return [(agg, item)]
    reviewed = {text(item_of(node, parent).get("name")) for node, parent in reviews}
    for agg, item in aggregates:
        if text(item.get("name")) in reviewed:
            return [(agg, item)]
    return aggregates[:1]


def item_of(review: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """The reviewed item: the review's itemReviewed, else the product it is nested in."""
    item = _first(review.get("itemReviewed"))
    if isinstance(item, dict):
        return item
    return parent or {}


def text(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("@value") or value.get("name")
    return str(value).strip() if value not in (None, "") else None
