"""``crmsync plugin new``: a plugin package that installs, registers through its entry
point and passes the conformance kit as generated (like singer-sdk's and datasette's
cookiecutter templates, llm's plugin template)."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import click

from .common import Exit

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")

PYPROJECT = Template('''[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A crmsync $kind plugin: $name."
requires-python = ">=3.11"
dependencies = ["crmsync"]

[project.optional-dependencies]
test = ["crmsync[testing]"]

[project.entry-points.crmsync]
$name = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.setuptools.package-data]
$package = ["py.typed"]
''')

SOURCE = Template('''"""The ``$name`` source: one interaction per line of a JSON Lines file with ``id``,
``text`` and optionally ``author``, ``email`` and ``date`` (ISO 8601). Replace the
reading with your system's API; keep the shape: records, then a Checkpoint after them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import crmsync


class ${cls}Source(crmsync.Source):
    """Interactions from a JSON Lines file."""

    name = "$name"
    channel = "other"  # feed, email, review, social, chat, other, or x-<name>
    description = "Interactions from a JSON Lines file (id, text, author, email, date)."
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "The JSON Lines file (relative to the config file)."}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def read(self, state: dict[str, Any] | None) -> Iterator[crmsync.Record]:
        path = self.resolve_path(self.config["path"])
        if not path.is_file():
            msg = f"{path} does not exist"
            raise crmsync.FatalError(msg, plugin=self.instance)
        done = int((state or {}).get("lines", 0))  # the bookmark: lines already read
        lines = path.read_text(encoding="utf-8").splitlines()
        self.expect(max(0, len(lines) - done))
        for n, line in enumerate(lines[done:], done + 1):
            if line.strip():
                ref = f"{path}:{n}"
                # whatever one line raises sends that line to the quarantine; the rest goes on
                yield from self.guard(ref, line, self._record(ref, line))
        yield crmsync.Checkpoint({"lines": len(lines)})

    def _record(self, ref: str, line: str) -> Iterator[crmsync.Record]:
        row = json.loads(line)
        if not isinstance(row, dict) or not row.get("id"):
            yield self.reject(ref, "a line needs a JSON object with an 'id'", line)
            return
        when = datetime.fromisoformat(row["date"]) if row.get("date") else None
        author = crmsync.Identity(name=row.get("author"), emails=[row["email"]] if row.get("email") else []) if row.get("author") or row.get("email") else None
        yield self.interaction(
            native_id=str(row["id"]),
            scope=self.instance,
            kind="post",
            body_text=row.get("text"),
            published=when.astimezone(UTC) if when and when.tzinfo else (when.replace(tzinfo=UTC) if when else None),
            author=author,
        )

    def replay(self, ref: str, raw: bytes) -> Iterator[crmsync.Record]:
        yield from self.guard(ref, raw, self._record(ref, raw.decode("utf-8")))


@crmsync.hookimpl
def register_sources(register: Callable[[type[crmsync.Source]], None]) -> None:
    register(${cls}Source)
''')

SINK = Template('''"""The ``$name`` sink: every interaction in one JSON file keyed by interaction id, written
atomically. Replace the writing with your target's API; keep the contract: upsert by
interaction id, receipts only for what is durable, a refused record reported with
``self.reject``, a transport failure raised as RetriableError, ``delete`` for erasure."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import crmsync


class ${cls}Sink(crmsync.Sink):
    """Interactions into a JSON file."""

    name = "$name"
    description = "Every interaction in one JSON file, keyed by interaction id."
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "The JSON file (relative to the config file)."}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def open(self) -> None:
        self.path = self.resolve_path(self.config["path"])

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}

    def _save(self, held: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(held, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)  # all or nothing: receipts follow only a complete write
        except OSError as exc:
            msg = f"cannot write {self.path}: {exc}"
            raise crmsync.FatalError(msg, plugin=self.instance) from None

    def write(self, deliveries: Sequence[crmsync.Delivery]) -> list[crmsync.Receipt]:
        held = self._load()
        for d in deliveries:
            held[d.interaction.interaction_id] = {**d.interaction.to_json_dict(), "version": d.version}  # an upsert
        self._save(held)
        return [d.receipt(d.interaction.interaction_id) for d in deliveries]

    def delete(self, deletions: Sequence[crmsync.Deletion]) -> Iterable[str]:
        held = self._load()
        for d in deletions:
            held.pop(d.interaction_id, None)  # gone already is fine
        self._save(held)
        return [d.interaction_id for d in deletions]


def read_back(path: Path) -> list[dict[str, Any]]:
    """What the target holds (for the conformance kit)."""
    return list(json.loads(path.read_text(encoding="utf-8")).values()) if path.exists() else []


@crmsync.hookimpl
def register_sinks(register: Callable[[type[crmsync.Sink]], None]) -> None:
    register(${cls}Sink)
''')

SOURCE_TEST = Template('''"""The crmsync conformance kit, run against ${cls}Source."""

import json

from crmsync.testing import get_source_test_class

from $package import ${cls}Source


def _config(tmp):
    rows = [{"id": f"n{i}", "author": "Ann", "email": "ann@example.org", "text": f"note {i}", "date": "2026-01-01T10:00:00+00:00"} for i in range(3)]
    (tmp / "in.jsonl").write_text("\\n".join(json.dumps(r) for r in rows) + "\\n")
    return {"path": "in.jsonl"}


def _bad(tmp):
    (tmp / "bad.jsonl").write_text('{"id": "ok", "text": "fine"}\\n{not json\\n{"text": "no id"}\\n')
    return {"path": "bad.jsonl"}


Test${cls}Source = get_source_test_class(${cls}Source, _config, bad_config=_bad, min_records=3)
''')

SINK_TEST = Template('''"""The crmsync conformance kit, run against ${cls}Sink."""

from crmsync.testing import get_sink_test_class

from $package import ${cls}Sink, read_back


def _unwritable(tmp):
    (tmp / "a-file").write_text("x")
    return {"path": "a-file/out.json"}  # a path under a file: nothing can be written


Test${cls}Sink = get_sink_test_class(
    ${cls}Sink,
    {"path": "out.json"},
    read_back=lambda options, tmp: read_back(tmp / options["path"]),
    unreachable_config=_unwritable,
)
''')

README = Template('''# $dist

A crmsync $kind plugin, generated by `crmsync plugin new $name --$kind`.

```bash
pip install -e '.[test]'      # registers the "$name" plugin through its entry point
crmsync plugins               # lists it
pytest                        # the crmsync conformance kit
```

Use it in `crmsync.toml`:

```toml
[${kind}s.my_$name]
plugin = "$name"
path = "$example_path"
```
''')


def generate(name: str, kind: str, parent: Path) -> Path:
    """Write the package for plugin ``name`` (a source or a sink) under ``parent``."""
    if not _NAME.match(name):
        msg = f"plugin name {name!r}: lower-case letters, digits and underscores, starting with a letter"
        raise Exit(msg, 2)
    dist, package = f"crmsync-{name.replace('_', '-')}", f"crmsync_{name}"
    root = parent / dist
    if root.exists():
        raise Exit(f"{root} exists already", 2)
    values = {"name": name, "dist": dist, "package": package, "kind": kind, "cls": "".join(p.title() for p in name.split("_")),
              "example_path": "in.jsonl" if kind == "source" else "out.json"}
    (root / package).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.substitute(values))
    (root / package / "__init__.py").write_text((SOURCE if kind == "source" else SINK).substitute(values))
    (root / package / "py.typed").write_text("")
    (root / "tests" / f"test_{name}.py").write_text((SOURCE_TEST if kind == "source" else SINK_TEST).substitute(values))
    (root / "README.md").write_text(README.substitute(values))
    return root


def register(cli: click.Group) -> None:
    """Add ``plugin new`` to ``cli``."""

    @cli.group()
    def plugin() -> None:
        """Write plugins: ``crmsync plugin new NAME --source`` (or ``--sink``)."""

    @plugin.command("new")
    @click.argument("name")
    @click.option("--source", "kind", flag_value="source", default=True, help="A source plugin (the default).")
    @click.option("--sink", "kind", flag_value="sink", help="A sink plugin.")
    @click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Where to create the package.")
    def new(name: str, kind: str, parent: Path) -> None:
        """Create crmsync-NAME/: a package with a working SOURCE or SINK, its entry point,
        a conformance-kit test and a README. It installs and passes the kit as generated.

        \b
        Example:
          crmsync plugin new ticketing --source
          cd crmsync-ticketing && pip install -e '.[test]' && pytest
        """
        root = generate(name, kind, parent)
        click.echo(f"wrote {root}: cd {root} && pip install -e '.[test]' && pytest")


__all__ = ["generate", "register"]
