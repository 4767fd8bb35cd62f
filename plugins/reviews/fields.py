"""Reading the fields of one review record (a CSV row as a dict, a JSON object): dotted
paths, the keys a preset is detected by, bodies with or without markup, star ratings;
and the head of an export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import crmsync

from .presets import STAR_WORDS


def get_path(record: Any, path: str | None) -> Any:
    if not path:
        return None
    if isinstance(record, dict) and path in record:
        value = record[path]
    else:
        value = record
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        value = value.strip()
    return None if value in ("", None) else value


def keys_of(record: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(record, dict):
        for k, v in record.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys_of(v, f"{prefix}{k}.")
    return out


_MARKUP = re.compile(r"<\s*[A-Za-z!/][^>]*>")


def body_fields(value: Any) -> dict[str, str | None]:
    """A review body: plain text as it is; text with markup (some exports carry HTML,
    and hostile reviews carry scripts) becomes sanitized HTML plus its plain text."""
    if value is None:
        return {"body_text": None}
    text = str(value)
    if _MARKUP.search(text):
        return {"body_html": text, "body_text": None}
    return {"body_text": text}


def plain_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return crmsync.html_to_text(text) if _MARKUP.search(text) else text


def number(value: Any) -> float:
    if isinstance(value, str):
        word = STAR_WORDS.get(value.strip().upper())
        if word is not None:
            return float(word)
        value = value.replace(",", ".") if value.count(",") == 1 and "." not in value else value
    return float(value)


def head_bytes(data: bytes | Path, n: int) -> bytes:
    if isinstance(data, bytes):
        return data[:n]
    with open(data, "rb") as fh:
        return fh.read(n)
