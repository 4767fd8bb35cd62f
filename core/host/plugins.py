"""The plugin host: loads built-in and third-party plugins through pluggy.

Built-in plugins come from :data:`DEFAULT_PLUGINS`; third-party ones from
installed distributions' ``crmsync`` entry points. A plugin that fails to
import, raises while registering or implements an unknown hook is reported by
name (``crmsync plugins``) and left out; the rest keep working.

Environment:

* ``CRMSYNC_LOAD_PLUGINS``: comma-separated allow-list of third-party entry
  points to load (empty: none). Unset: all.
* ``CRMSYNC_BLOCK_PLUGINS``: comma-separated plugin names never to load,
  built-ins included.
* ``CRMSYNC_TRACE_PLUGINS``: set to ``1`` to trace every hook call to stderr.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from ..contract import hookspecs
from ..contract.base import Enricher, Sink, Source

#: Built-in plugins, registered before any third-party plugin.
DEFAULT_PLUGINS: tuple[str, ...] = ("crmsync_rss", "crmsync_reviews", "crmsync_email", "crmsync_crm_csv", "crmsync_enrich", "crmsync_singer", "crmsync_tryton", "crmsync_hubspot", "crmsync_salesforce", "crmsync_sql")

_KINDS: dict[str, type | None] = {"sources": Source, "sinks": Sink, "enrichers": Enricher, "matchers": None}


@dataclass
class PluginInfo:
    """What ``crmsync plugins`` reports about one plugin."""

    name: str
    origin: str  # builtin, entry point, registered
    module: str | None = None
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    sinks: list[str] = field(default_factory=list)
    enrichers: list[str] = field(default_factory=list)
    matchers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PluginHost:
    """A pluggy manager plus the registries it fills."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("crmsync")
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get("CRMSYNC_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
            self.pm.enable_tracing()
        self.infos: dict[str, PluginInfo] = {}
        self.sources: dict[str, type[Source]] = {}
        self.sinks: dict[str, type[Sink]] = {}
        self.enrichers: dict[str, type[Enricher]] = {}
        self.matchers: dict[str, type] = {}
        self.owners: dict[tuple[str, str], str] = {}
        self._collected = False

    # loading -------------------------------------------------------------
    def load(self, *, builtins: bool = True, entry_points: bool = True) -> None:
        """Register built-ins and third-party plugins (idempotent per name)."""
        blocked = _env_list("CRMSYNC_BLOCK_PLUGINS") or set()
        if builtins:
            for modname in DEFAULT_PLUGINS:
                short = modname.removeprefix("crmsync_")
                if short in blocked or modname in blocked or short in self.infos:
                    continue
                info = PluginInfo(name=short, origin="builtin", module=modname, distribution="crmsync", version=_version("crmsync"))
                try:
                    module = importlib.import_module(modname)
                except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
                    info.errors.append(f"import failed: {_describe(exc)}")
                    self.infos[short] = info
                    continue
                self.add(module, info)
        if entry_points:
            allowed = _env_list("CRMSYNC_LOAD_PLUGINS")
            for ep in importlib.metadata.entry_points(group="crmsync"):
                if ep.name in self.infos or ep.name in blocked:
                    continue
                if allowed is not None and ep.name not in allowed:
                    continue
                dist = getattr(ep, "dist", None)
                info = PluginInfo(
                    name=ep.name,
                    origin="entry point",
                    module=ep.value,
                    distribution=dist.metadata["Name"] if dist else None,
                    version=dist.version if dist else None,
                )
                try:
                    module = ep.load()
                except Exception as exc:  # noqa: BLE001
                    info.errors.append(f"import of {ep.value!r} failed: {_describe(exc)}")
                    self.infos[ep.name] = info
                    continue
                self.add(module, info)
        self._collected = False

    def add(self, plugin: object, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object (module or instance) and validate its hooks."""
        if info is None:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            info = PluginInfo(name=name, origin="registered", module=getattr(plugin, "__module__", None))
        self.infos[info.name] = info
        try:
            self.pm.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            info.errors.append(f"violates a hook specification: {exc}")
            return info
        except ValueError as exc:
            info.errors.append(str(exc))
            return info
        unknown = [c.name for c in self.pm.get_hookcallers(plugin) or [] if not c.has_spec()]
        if unknown:
            known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith(("register_", "resolve_"))))
            info.errors.append(f"implements unknown hook(s) {', '.join(unknown)}; known hooks: {known}")
            self.pm.unregister(plugin)
            return info
        info.hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self._collected = False
        return info

    def remove(self, name: str) -> None:
        """Unregister a plugin by name (tests use this in ``finally``)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.infos.pop(name, None)
        self._collected = False

    # registries ----------------------------------------------------------
    def collect(self) -> None:
        """Call the ``register_*`` hooks, one plugin at a time, isolating failures."""
        if self._collected:
            return
        for reg in (self.sources, self.sinks, self.enrichers, self.matchers):
            reg.clear()
        self.owners.clear()
        for info in self.infos.values():
            info.sources, info.sinks, info.enrichers, info.matchers = [], [], [], []
            info.errors = [e for e in info.errors if not e.startswith("register_")]
        for kind in ("sources", "sinks", "enrichers", "matchers"):
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():  # registration order: built-ins first
                info = self.infos.get(impl.plugin_name) or PluginInfo(name=impl.plugin_name, origin="registered")
                self.infos.setdefault(impl.plugin_name, info)
                try:
                    impl.function(**{"register": self._registrar(kind, info)})
                except Exception as exc:  # noqa: BLE001
                    info.errors.append(f"register_{kind} failed: {_describe(exc)}")
        self._collected = True

    def _registrar(self, kind: str, info: PluginInfo) -> Callable[[type], None]:
        registry: dict[str, type] = getattr(self, kind)
        base = _KINDS[kind]

        def register(cls: type) -> None:
            if base is None:
                if not (isinstance(cls, type) and callable(getattr(cls, "match", None))):
                    msg = f"register_{kind}: {cls!r} is not a class with a match(author, index) method"
                    raise TypeError(msg)
            elif not (isinstance(cls, type) and issubclass(cls, base)):
                msg = f"register_{kind}: {cls!r} is not a subclass of crmsync.{base.__name__}"
                raise TypeError(msg)
            key = getattr(cls, "name", "")
            if not key:
                msg = f"register_{kind}: {cls.__name__} has no 'name' class attribute"
                raise TypeError(msg)
            owner = self.owners.get((kind, key))
            if owner is not None and owner != info.name:
                info.errors.append(f"register_{kind}: name {key!r} is already registered by plugin {owner!r}; ignored")
                return
            registry[key] = cls
            self.owners[(kind, key)] = info.name
            getattr(info, kind).append(key)

        return register

    def register_commands(self, cli: Any) -> None:
        """Let plugins add CLI commands; a failing plugin is reported, not fatal."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            before = set(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                if info:
                    info.errors.append(f"register_commands failed: {_describe(exc)}")
                continue
            if info:
                info.commands = sorted(set(cli.commands) - before)

    def resolve_secret(self, scheme: str, reference: str) -> Any:
        """Ask plugins to resolve a secret reference of an unknown scheme."""
        return self.pm.hook.resolve_secret(scheme=scheme, reference=reference)

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` in ``kind`` (sources, sinks, enrichers)."""
        self.collect()
        found: type = getattr(self, kind)[name]
        return found

    def report(self) -> list[dict[str, Any]]:
        """Every plugin as a dict, sorted by name (``crmsync plugins --json``), with the
        options of each source, sink and enricher class it registers."""
        self.collect()
        out = []
        for n in sorted(self.infos):
            item = self.infos[n].as_dict()
            item["options"] = {
                kind: {name: options_of(getattr(self, kind)[name]) for name in item.get(kind, []) if name in getattr(self, kind)}
                for kind in ("sources", "sinks", "enrichers")
                if item.get(kind)
            }
            out.append(item)
        return out


def options_of(cls: type) -> dict[str, dict[str, Any]]:
    """A plugin class's options from its config schema: type, default, whether
    required or secret, and the description (``crmsync plugins``)."""
    schema = getattr(cls, "config_schema", None) or {}
    required = set(schema.get("required", []))
    out: dict[str, dict[str, Any]] = {}
    for key, spec in schema.get("properties", {}).items():
        t = spec.get("type") or ("one of " + ", ".join(map(str, spec["enum"])) if "enum" in spec else "any")
        if t == "array" and isinstance(spec.get("items"), dict) and spec["items"].get("type"):
            t = f"array of {spec['items']['type']}"
        entry: dict[str, Any] = {"type": t if isinstance(t, str) else " | ".join(t)}
        if "default" in spec:
            entry["default"] = spec["default"]
        if key in required:
            entry["required"] = True
        if spec.get("secret"):
            entry["secret"] = True
        if spec.get("description"):
            entry["description"] = spec["description"]
        out[key] = entry
    return out


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {p.strip() for p in value.split(",") if p.strip()}


@functools.lru_cache(maxsize=64)
def _version(dist: str) -> str | None:
    # a distribution search on every call: the built-ins ask for crmsync's six times
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first use."""
    global _host  # noqa: PLW0603
    with _lock:
        if _host is None:
            host = PluginHost()
            host.load()
            _host = host
        return _host


def reset_host() -> None:
    """Forget the process-wide host (the next :func:`get_host` reloads)."""
    global _host  # noqa: PLW0603
    with _lock:
        _host = None


__all__ = ["DEFAULT_PLUGINS", "PluginHost", "PluginInfo", "get_host", "reset_host"]
