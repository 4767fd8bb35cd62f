"""Plugin host: built-ins, entry points, broken plugins, allow/block lists, the example distribution."""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner

import crmsync
from crmsync.contract import hookspecs
from crmsync.cli import create_cli
from crmsync.host.plugins import DEFAULT_PLUGINS, PluginHost, get_host

from .conftest import ROOT, crmsync_cmd


def test_builtins_register_their_classes():
    host = PluginHost()
    host.load(entry_points=False)
    host.collect()
    assert sorted(host.sources) == ["crm_csv", "email", "hubspot", "reviews", "rss", "salesforce", "singer", "tryton"]
    assert sorted(host.sinks) == ["crm_csv", "hubspot", "salesforce", "singer", "sql", "tryton"]
    assert sorted(host.enrichers) == ["language", "mentions", "sentiment", "triage"]
    names = {p["name"]: p for p in host.report()}
    assert set(names) == {"rss", "reviews", "email", "crm_csv", "enrich", "singer", "tryton", "hubspot", "salesforce", "sql"}
    assert names["crm_csv"]["hooks"] == ["register_sinks", "register_sources"]
    assert all(p["origin"] == "builtin" and not p["errors"] for p in names.values())


def test_builtin_plugins_use_only_the_public_api():
    for mod in DEFAULT_PLUGINS:
        folder = ROOT / "plugins" / mod.removeprefix("crmsync_")
        for py in folder.glob("*.py"):
            text = py.read_text()
            for line in text.splitlines():
                s = line.strip()
                if s.startswith(("import crmsync.", "from crmsync.", "from crmsync import")):
                    pytest.fail(f"{py}: imports crmsync internals: {s!r}; use 'import crmsync'")


class _EP:
    """A stand-in for importlib.metadata.EntryPoint."""

    def __init__(self, name: str, value: object, error: Exception | None = None) -> None:
        self.name, self.value, self._obj, self._error = name, f"{name}_module", value, error
        self.dist = types.SimpleNamespace(metadata={"Name": f"crmsync-{name}"}, version="9.9")

    def load(self):
        if self._error:
            raise self._error
        return self._obj


class GoodSource(crmsync.Source):
    name = "good"

    def read(self, state):
        yield from ()


def _plugin(**hooks):
    return types.SimpleNamespace(**{k: crmsync.hookimpl(v) for k, v in hooks.items()})


def _load_with(monkeypatch, eps, env=None):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps if group == "crmsync" else [])
    monkeypatch.delenv("CRMSYNC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CRMSYNC_BLOCK_PLUGINS", raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    host = PluginHost()
    host.load()
    return host, {p["name"]: p for p in host.report()}


def test_entry_point_plugins_are_discovered_and_failures_isolated(monkeypatch):
    def bad_register(register):
        raise RuntimeError("boom in register")

    eps = [
        _EP("good", _plugin(register_sources=lambda register: register(GoodSource))),
        _EP("broken_import", None, ImportError("No module named 'missing_dep'")),
        _EP("bad_register", _plugin(register_sources=bad_register)),
        _EP("typo", _plugin(register_sorces=lambda register: None)),
        _EP("wrong_args", _plugin(register_sources=lambda registr: None)),
    ]
    host, plugins = _load_with(monkeypatch, eps)
    assert plugins["good"]["sources"] == ["good"] and plugins["good"]["version"] == "9.9"
    assert plugins["good"]["distribution"] == "crmsync-good" and plugins["good"]["origin"] == "entry point"
    assert "No module named 'missing_dep'" in plugins["broken_import"]["errors"][0]
    assert "boom in register" in plugins["bad_register"]["errors"][0]
    assert "unknown hook(s) register_sorces" in plugins["typo"]["errors"][0]
    assert "register_sources" in plugins["typo"]["errors"][0]  # lists the known hooks
    assert "violates a hook specification" in plugins["wrong_args"]["errors"][0]
    assert "registr" in plugins["wrong_args"]["errors"][0]
    assert "good" in host.sources and "rss" in host.sources  # the rest still work


def test_allow_and_block_lists(monkeypatch):
    eps = [_EP("good", _plugin(register_sources=lambda register: register(GoodSource))), _EP("other", _plugin())]
    _, plugins = _load_with(monkeypatch, eps, {"CRMSYNC_LOAD_PLUGINS": "other"})
    assert "good" not in plugins and "other" in plugins
    _, plugins = _load_with(monkeypatch, eps, {"CRMSYNC_BLOCK_PLUGINS": "good,email"})
    assert "good" not in plugins and "email" not in plugins and "rss" in plugins
    _, plugins = _load_with(monkeypatch, eps, {"CRMSYNC_LOAD_PLUGINS": ""})
    assert set(plugins) == {"rss", "reviews", "email", "crm_csv", "enrich", "singer", "tryton", "hubspot", "salesforce", "sql"}


def test_duplicate_names_keep_the_builtin(monkeypatch):
    class FakeRss(crmsync.Source):
        name = "rss"

    eps = [_EP("impostor", _plugin(register_sources=lambda register: register(FakeRss)))]
    host, plugins = _load_with(monkeypatch, eps)
    assert host.sources["rss"].__module__ == "crmsync_rss.source"
    assert "already registered by plugin 'rss'" in plugins["impostor"]["errors"][0]


def test_register_rejects_non_plugin_classes(monkeypatch):
    eps = [_EP("weird", _plugin(register_sinks=lambda register: register(dict)))]
    _, plugins = _load_with(monkeypatch, eps)
    assert "is not a subclass of crmsync.Sink" in plugins["weird"]["errors"][0]


def test_plugins_command_json(monkeypatch):
    result = CliRunner().invoke(create_cli(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["name"] for p in data] == ["crm_csv", "email", "enrich", "hubspot", "reviews", "rss", "salesforce", "singer", "sql", "tryton"]


def test_plugin_commands_are_added():
    host = get_host()
    plugin = _plugin(register_commands=lambda cli: cli.command(name="hi")(lambda: print("hi there")))
    host.add(plugin)
    try:
        result = CliRunner().invoke(create_cli(), ["hi"])
        assert result.exit_code == 0 and "hi there" in result.output
    finally:
        host.remove(plugin.__class__.__name__)


def test_every_hook_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith(("register_", "resolve_"))]
    assert hooks
    for name in hooks:
        spec = getattr(hookspecs, name)
        assert spec.__doc__ and ":returns:" in spec.__doc__, f"{name} needs a docstring with :returns:"
        assert f"### `{name}(" in readme, f"README must have a section for hook {name}"


def test_example_distribution_is_discovered(tmp_path):
    """Install examples/plugin-example as a real distribution; crmsync finds it via its entry point."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT / "examples" / "plugin-example")],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("CRMSYNC_LOAD_PLUGINS", None)
    out = subprocess.run([*crmsync_cmd(), "plugins", "--json"], env=env, capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert set(plugins) == {"rss", "reviews", "email", "crm_csv", "enrich", "singer", "tryton", "hubspot", "salesforce", "sql", "example"}
    ex = plugins["example"]
    assert ex["origin"] == "entry point" and ex["distribution"] == "crmsync-example" and ex["version"] == "0.2.0"
    assert sorted(ex["sources"]) == ["api_notes", "jsonl_notes"] and ex["enrichers"] == ["word_count"] and ex["commands"] == ["example-hello"]
    # the example's own tests: the conformance kit, for the file source and the HTTP API source
    kit = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir", str(tmp_path), "-c", os.devnull, str(ROOT / "examples" / "plugin-example" / "tests")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert kit.returncode == 0 and " passed" in kit.stdout, kit.stdout[-3000:]
    hello = subprocess.run([*crmsync_cmd(), "example-hello", "tester"], env=env, capture_output=True, text=True, check=True)
    assert hello.stdout.strip() == "hello, tester, from crmsync-example"
    blocked = subprocess.run([*crmsync_cmd(), "plugins", "--json"], env={**env, "CRMSYNC_BLOCK_PLUGINS": "example"}, capture_output=True, text=True, check=True)
    assert "example" not in {p["name"] for p in json.loads(blocked.stdout)}
    # a third-party source is a Singer tap too, enrichers and STATE included
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "n1", "author": "Ann", "email": "ann@example.org", "text": "three words here", "date": "2026-11-01T10:00:00+00:00"}\n')
    (tmp_path / "tap.json").write_text(json.dumps({"path": str(notes), "enrichers": ["word_count"]}))
    tap = subprocess.run([*crmsync_cmd(), "tap", "jsonl_notes", "--config", str(tmp_path / "tap.json")], env=env, capture_output=True, text=True, check=True)
    msgs = [json.loads(line) for line in tap.stdout.splitlines() if line.strip()]
    (record,) = [m["record"] for m in msgs if m["type"] == "RECORD"]
    assert record["extra"]["word_count"] == 3 and record["author"]["emails"] == ["ann@example.org"]
    assert [m for m in msgs if m["type"] == "STATE"][-1]["value"]["bookmarks"]["interactions"]["crmsync_bookmark"] == {"lines": 1}
    # and its own conformance tests pass against the installed crmsync
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "examples" / "plugin-example" / "tests")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_example_plugin_and_the_public_api_pass_mypy_strict(tmp_path):
    """A plugin author's type checker accepts the public API as the example uses it
    (``crmsync`` ships py.typed; every module the example imports is checked)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mypy is not installed (it is in the test extra)")
    # the editable install maps crmsync to core/ through an import hook mypy does not run
    (tmp_path / "crmsync").symlink_to(ROOT / "core")
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    res = subprocess.run([str(Path(sys.executable).parent / "mypy"), "--strict", "--no-incremental", str(ROOT / "examples" / "plugin-example" / "crmsync_example" / "__init__.py")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.mark.parametrize("kind", ["source", "sink"])
def test_a_generated_plugin_installs_registers_and_passes_the_kit(tmp_path, kind):
    res = CliRunner().invoke(create_cli(), ["plugin", "new", f"gen_{kind}", f"--{kind}", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    root = tmp_path / f"crmsync-gen-{kind}"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(root)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("CRMSYNC_LOAD_PLUGINS", None)
    listed = {p["name"]: p for p in json.loads(subprocess.run([*crmsync_cmd(), "plugins", "--json"], env=env, capture_output=True, text=True, check=True).stdout)}
    assert listed[f"gen_{kind}"]["origin"] == "entry point" and listed[f"gen_{kind}"][f"{kind}s"] == [f"gen_{kind}"]
    # its own tests: the conformance kit, unchanged
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
