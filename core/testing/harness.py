"""The kit's harness: a plugin host with just the plugins under test, a config
for them, and the real runner over a temporary store."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any


from ..contract.base import Context, Sink, Source
from ..contract.hookspecs import hookimpl
from ..host.config import Config, InstanceConfig, secret_paths, validate_options
from ..host.plugins import PluginHost, PluginInfo
from ..store import Store

ConfigArg = dict[str, Any] | Callable[[Path], dict[str, Any]]


class _KitPlugin:
    def __init__(self, sources: list[type[Source]], sinks: list[type[Sink]]) -> None:
        self.sources, self.sinks = sources, sinks

    @hookimpl
    def register_sources(self, register: Callable[[type[Source]], None]) -> None:
        for cls in self.sources:
            register(cls)

    @hookimpl
    def register_sinks(self, register: Callable[[type[Sink]], None]) -> None:
        for cls in self.sinks:
            register(cls)


def kit_host(sources: list[type[Source]] = (), sinks: list[type[Sink]] = ()) -> PluginHost:  # type: ignore[assignment]
    """A plugin host holding just the given classes (no installed plugins)."""
    host = PluginHost()
    host.add(_KitPlugin(list(sources), list(sinks)), PluginInfo(name="crmsync-kit", origin="registered"))
    return host


def kit_config(
    directory: Path,
    host: PluginHost,
    *,
    sources: dict[str, tuple[str, dict[str, Any]]] | None = None,
    sinks: dict[str, tuple[str, dict[str, Any]]] | None = None,
    store_url: str | None = None,
) -> Config:
    """A validated :class:`Config` for instances given as ``name -> (plugin, options)``."""
    host.collect()
    # sources run in this process (workers = "thread"): a plugin's failures keep their
    # tracebacks, and state it keeps between runs is seen as a long-lived process sees it
    cfg = Config(path=None, directory=directory, store_url=store_url or f"sqlite:///{directory / 'kit.db'}", host=host, retry_attempts=2, retry_max_wait=0.1, workers="thread")
    for kind, insts in (("sources", sources or {}), ("sinks", sinks or {})):
        for name, (plugin, options) in insts.items():
            cls = getattr(host, kind)[plugin]
            opts = validate_options(cls.config_schema, options, where=f"[{kind}.{name}]")
            getattr(cfg, kind)[name] = InstanceConfig(kind=kind, name=name, plugin=plugin, options=opts, secret_keys=secret_paths(cls.config_schema))
    return cfg


def kit_run(cfg: Config, **kwargs: Any) -> Any:
    """Run the real runner over ``cfg``; returns the run report."""
    from ..pipeline.run import Runner

    store = Store(cfg.store_url)
    try:
        return Runner(cfg, store, cfg.host).run(**kwargs)  # type: ignore[arg-type]
    finally:
        store.dispose()


def _resolve(config: ConfigArg | None, tmp: Path, *, deterministic: bool = True) -> dict[str, Any] | None:
    """The options ``config`` gives for ``tmp``; a function must give the same ones each
    time it is called for one directory (the kit calls it more than once). Configs meant
    to fail (``unreachable_config``, ``bad_config``) are called once, unchecked."""
    if config is None:
        return None
    if not callable(config):
        return copy.deepcopy(config)
    if not deterministic:
        return copy.deepcopy(config(tmp))
    first, second = config(tmp), config(tmp)
    assert first == second, (
        f"config(tmp) must be deterministic: called twice for one directory it gave {first!r}, then {second!r} "
        "(derive paths and names from tmp, not from random values or the clock)"
    )
    return copy.deepcopy(first)


def read_source(cls: type[Source], options: dict[str, Any], tmp: Path, state: dict[str, Any] | None = None) -> list[Any]:
    """Everything one ``read(state)`` of ``cls`` yields (records, :class:`~crmsync.Rejected`,
    checkpoints), with ``options`` validated and secret references resolved as the
    runner would, and relative paths relative to ``tmp``. No store, no runner.

    .. versionadded:: 0.2
    """
    cfg = kit_config(tmp, kit_host(sources=[cls]), sources={"kit": (cls.name, options)})
    opts = cfg.resolved_options(cfg.sources["kit"])
    src = cls("kit", opts, Context(config_dir=tmp))
    return list(src.read(state))


