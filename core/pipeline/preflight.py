"""The checks ``crmsync validate`` and ``crmsync run`` share before anything is read:
there is something to run, the store URL names a database and driver that exist,
and every selected instance's options fit this machine (``preflight()`` of each
source and sink: input paths, option combinations). A problem is a
:class:`~crmsync.ConfigError` (exit 2) listing every instance that has one."""

from __future__ import annotations

from collections.abc import Sequence

from ..contract.base import Context
from ..contract.errors import ConfigError, CrmsyncError
from ..host.config import Config, InstanceConfig
from ..host.plugins import PluginHost
from ..store.database import check_url


def selected(config: Config, kind: str, names: Sequence[str] | None) -> list[InstanceConfig]:
    """The enabled instances of ``kind``, or the named ones (which must exist)."""
    configured: dict[str, InstanceConfig] = getattr(config, kind)
    if not names:
        return [i for i in configured.values() if i.enabled]
    missing = [n for n in names if n not in configured]
    if missing:
        msg = f"unknown {kind[:-1]} {missing[0]!r}; configured: {', '.join(sorted(configured)) or '(none)'}"
        raise ConfigError(msg)
    return [configured[n] for n in names]


def preflight(config: Config, host: PluginHost, *, sources: Sequence[str] | None = None, sinks: Sequence[str] | None = None) -> list[str]:
    """Run the offline checks; return the lines the plugins report, or raise
    :class:`ConfigError` naming every problem."""
    if not config.sources and not config.sinks:
        msg = f"{config.where}: no [sources.*] and no [sinks.*]: nothing to run (crmsync init writes a commented example)"
        raise ConfigError(msg)
    check_url(config.store_url)
    context = Context(config_dir=config.directory, dry_run=True)
    lines: list[str] = []
    problems: list[str] = []
    for kind, names in (("sources", sources), ("sinks", sinks)):
        for inst in selected(config, kind, names):
            try:
                plugin = host.get(kind, inst.plugin)(inst.name, config.resolved_options(inst), context)
                lines += [f"{inst.label}: {line}" for line in plugin.preflight() or ()]
            except CrmsyncError as exc:
                problems.append(f"{inst.label}: {getattr(exc, 'message', exc)}")
    if problems:
        msg = problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        raise ConfigError(msg)
    return lines
