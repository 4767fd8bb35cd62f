"""Existing tables: a mapping from crmsync's records to the columns of tables that
already exist (a CRM's notes table, a reverse-ETL staging table).

Per target table, ``key`` names the column that identifies a row (it must be the
primary key or unique, so rows can be upserted) and ``columns`` says what goes
into each column, as one of these expressions:

=========================  ==============================================================
``FIELD``                  a field of the interaction: ``interaction_id``, ``version``,
                           ``title``, ``body_text``, ``url``, ``published``,
                           ``author.name``, ``author.email`` (the first),
                           ``sentiment.score``, ``rating.normalized``, ... (dotted)
``const:VALUE``            a constant (converted to the column's type: ``const:0``)
``join:SEP:F1,F2,...``     fields joined by SEP, empty ones left out
``first:F1,F2,...``        the first of the fields that has a value
``contact:CRM``            the matched CRM contact's id in that CRM (``crm_ids[CRM]``);
                           ``contact:`` takes the first of any CRM
``json:FIELD`` / ``json``  a field, or the whole record, as JSON
``now``                    the time of the write
=========================  ==============================================================

Timestamps go into a column without a time zone as the sink's ``timezone``
(default UTC) local time. :func:`problems` checks a mapping against the tables
the database reflects (``crmsync validate``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import crmsync

#: fields whose text usually runs long: a column shorter than this is reported
USUAL_LENGTHS = {"title": 200, "body_text": 4000, "summary": 1000, "url": 500, "native_id": 200}


@dataclass(frozen=True)
class TableMap:
    """One target table: its key column and an expression per column."""

    name: str
    key: str
    columns: dict[str, str]


def parse(tables: dict[str, Any]) -> list[TableMap]:
    """The ``tables`` option as :class:`TableMap` s (the schema already checked its shape)."""
    out = []
    for name, spec in tables.items():
        columns = dict(spec["columns"])
        key = spec.get("key") or next(iter(columns))
        out.append(TableMap(name, key, columns))
    return out


def value(expr: str, d: crmsync.Delivery, now: datetime) -> Any:
    """The value of ``expr`` for delivery ``d``."""
    rec = d.interaction
    if expr == "now":
        return now
    if expr.startswith("const:"):
        return expr[len("const:"):]
    if expr == "json":
        return rec.model_dump_json()
    if expr.startswith("json:"):
        return json.dumps(_field(expr[len("json:"):], d), default=str, ensure_ascii=False)
    if expr.startswith("join:"):
        _, sep, fields = expr.split(":", 2)
        parts = [_field(f.strip(), d) for f in fields.split(",")]
        return sep.join(str(p) for p in parts if p not in (None, "", []))
    if expr.startswith("first:"):
        return next((v for v in (_field(f.strip(), d) for f in expr[len("first:"):].split(",")) if v not in (None, "", [])), None)
    if expr.startswith("contact:"):
        crm = expr[len("contact:"):]
        author = d.author_profile or rec.author
        ids = dict(author.crm_ids) if author else {}
        if not crm:
            return next(iter(sorted(ids.items())), (None, None))[1]
        return ids.get(crm)
    return _field(expr, d)


def _field(path: str, d: crmsync.Delivery) -> Any:
    if path == "version":
        return d.version
    if path == "external_id":
        return d.external_id
    obj: Any = d.interaction
    parts = path.split(".")
    if parts[0] == "author":
        obj = d.author_profile or d.interaction.author
        parts = parts[1:]
        if parts == ["email"]:
            return obj.emails[0] if obj is not None and obj.emails else None
    for part in parts:
        if obj is None:
            return None
        obj = getattr(obj, part, None) if not isinstance(obj, dict) else obj.get(part)
    return obj


def known_field(path: str) -> bool:
    """Whether ``path`` names a field of an interaction (or of its author); any key
    below a mapping field (``extra.triage``, ``engagement.comments``) is allowed."""
    if path in ("version", "external_id", "author.email"):
        return True
    model: Any = crmsync.Interaction
    parts = path.split(".")
    if parts[0] == "author":
        model, parts = crmsync.Identity, parts[1:]
        if not parts:
            return False
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = _model_of(fields[part].annotation)
        if model is None and i < len(parts) - 1:
            return "dict" in str(fields[part].annotation)
    return True


def _model_of(annotation: Any) -> Any:
    from typing import get_args

    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
            return candidate
    return None


def convert(v: Any, column: dict[str, Any], tz: ZoneInfo) -> Any:
    """``v`` as the reflected ``column`` takes it: numbers and booleans from constants,
    timestamps in the column's time zone."""
    from sqlalchemy import types

    t = column["type"]
    if v is None:
        return None
    if isinstance(v, datetime):
        if getattr(t, "timezone", False):
            return v
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(tz).replace(tzinfo=None)
    if isinstance(t, types.Boolean):
        return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "t")
    if isinstance(t, types.Integer) and not isinstance(v, bool):
        return int(v) if not isinstance(v, int) else v
    if isinstance(t, types.Float | types.Numeric) and not isinstance(v, bool):
        return float(v)
    if isinstance(t, types.String | types.Text) and not isinstance(v, str):
        return str(v)
    return v


def problems(maps: list[TableMap], inspector: Any, schema: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) of ``maps`` against the database: unknown tables or columns,
    NOT NULL columns left without a value, a key that is not unique, type mismatches,
    text columns shorter than their field usually needs."""
    from sqlalchemy import types

    errors: list[str] = []
    warnings: list[str] = []
    existing = set(inspector.get_table_names(schema=schema))
    for m in maps:
        if m.name not in existing:
            errors.append(f"table {m.name!r} does not exist (tables: {', '.join(sorted(existing)) or 'none'})")
            continue
        cols = {c["name"]: c for c in inspector.get_columns(m.name, schema=schema)}
        for col in m.columns:
            if col not in cols:
                errors.append(f"{m.name}: no column {col!r} (columns: {', '.join(sorted(cols))})")
        if m.key not in m.columns:
            errors.append(f"{m.name}: the key column {m.key!r} has no value in columns")
        pk = set(inspector.get_pk_constraint(m.name, schema=schema).get("constrained_columns") or [])
        unique = [set(u["column_names"]) for u in inspector.get_unique_constraints(m.name, schema=schema)]
        unique += [set(i["column_names"]) for i in inspector.get_indexes(m.name, schema=schema) if i.get("unique")]
        if pk != {m.key} and {m.key} not in unique:
            errors.append(f"{m.name}: the key column {m.key!r} is neither the primary key nor unique, so rows cannot be upserted by it")
        for name, col in cols.items():
            if name in m.columns or col.get("nullable", True) or col.get("default") is not None or col.get("autoincrement") is True:
                continue
            if name in pk and isinstance(col["type"], types.Integer):
                continue  # an integer primary key the database numbers itself
            errors.append(f"{m.name}: column {name!r} is NOT NULL and has no default, but the mapping gives it no value")
        for col, expr in m.columns.items():
            if col not in cols:
                continue
            bad = _expression_problem(expr)
            if bad:
                errors.append(f"{m.name}.{col}: {bad}")
                continue
            t = cols[col]["type"]
            if expr.startswith("first:"):
                field: str | None = expr[len("first:"):].split(",")[0].strip()
            elif expr.startswith(("const:", "join:", "contact:", "json", "now")):
                field = None
            else:
                field = expr
            if field in ("published", "updated", "fetched", "due_at") or expr == "now":
                if not isinstance(t, types.DateTime | types.String | types.Text):
                    errors.append(f"{m.name}.{col}: {expr} is a timestamp but the column is {t}")
            elif field in ("title", "body_text", "summary", "url", "native_id", "interaction_id", "source", "channel", "kind", "author.name", "author.email") and isinstance(t, types.Integer | types.Float | types.Numeric | types.DateTime | types.Boolean):
                errors.append(f"{m.name}.{col}: {expr} is text but the column is {t}")
            length = getattr(t, "length", None)
            need = USUAL_LENGTHS.get(field or "")
            if length and need and length < need:
                warnings.append(f"{m.name}.{col} holds {length} characters; {field} often needs {need} or more (longer values are cut and counted)")
            if field == "interaction_id" and length and length < 36:
                errors.append(f"{m.name}.{col} holds {length} characters; an interaction id has 36")
    return errors, warnings


def _expression_problem(expr: str) -> str | None:
    if expr in ("now", "json") or expr.startswith(("const:", "contact:")):
        return None
    if expr.startswith("json:"):
        return None if known_field(expr[len("json:"):]) else f"unknown field {expr[len('json:'):]!r}"
    if expr.startswith("first:"):
        unknown = [f for f in expr[len("first:"):].split(",") if not known_field(f.strip())]
        return f"unknown field(s) {', '.join(unknown)}" if unknown else None
    if expr.startswith("join:"):
        parts = expr.split(":", 2)
        if len(parts) != 3:
            return "join needs join:SEPARATOR:field1,field2"
        unknown = [f for f in parts[2].split(",") if not known_field(f.strip())]
        return f"unknown field(s) {', '.join(unknown)}" if unknown else None
    return None if known_field(expr) else f"unknown field or expression {expr!r} (fields: title, body_text, url, published, author.name, ...; or const:, join:, first:, contact:, json:, now)"
