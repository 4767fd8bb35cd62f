"""Loading and validating ``crmsync.toml``.

The file names source, sink and enricher *instances*; each has a ``plugin``
and that plugin's options, validated against the plugin's ``config_schema``.
Errors name the file, the key and the valid choices. Secret options are
references (``env:NAME``, ``file:PATH``) resolved when the instance starts;
their values are never printed, logged or stored.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..contract.errors import ConfigError
from .plugins import PluginHost
from .secrets import Secret, redact, redact_url, register_secret_value, url_password, resolve_reference, secret_paths

DEFAULT_CONFIG_NAME = "crmsync.toml"
DEFAULT_STORE_PATH = ".crmsync/crmsync.db"

_TOP_KEYS = {"store", "run", "identity", "privacy", "sources", "sinks", "enrichers"}
_PRIVACY_KEYS = {"opt_out"}
_IDENTITY_KEYS = {"enabled", "auto_link_threshold", "fuzzy_threshold", "influence"}
_STORE_KEYS = {"url", "path"}
_RUN_KEYS = {"batch_size", "concurrency", "retry_attempts", "retry_max_wait", "workers"}
#: Keys every instance may have besides its plugin's own options.
COMMON_KEYS = {
    "sources": {"plugin", "enabled", "enrichers"},
    "sinks": {"plugin", "enabled", "sources"},
    "enrichers": {"plugin", "enabled"},
}
_SINGULAR = {"sources": "source", "sinks": "sink", "enrichers": "enricher"}

#: ``[identity.influence]`` defaults (crmsync.pipeline.influence explains them)
INFLUENCE_DEFAULTS = {
    "reach_weight": 1.0,
    "frequency_weight": 1.0,
    "mentions_weight": 0.5,
    "influencer_score": 5.0,
    "ambassador_sentiment": 0.3,
    "detractor_sentiment": -0.3,
}


@dataclass
class InstanceConfig:
    """One configured source, sink or enricher."""

    kind: str  # sources, sinks, enrichers
    name: str
    plugin: str
    options: dict[str, Any]
    enabled: bool = True
    sources: list[str] | None = None  # sinks: which sources feed it
    enrichers: list[str] | None = None  # sources: which enrichers apply
    secret_keys: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"[{self.kind}.{self.name}]"


def fork_available() -> bool:
    """Worker processes are forked (they inherit the loaded plugins and models)."""
    import multiprocessing

    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> str:
    return "process" if fork_available() else "thread"


def default_concurrency() -> int:
    """Sources at once: one per core (they are CPU-bound), at least 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(2, cores)


@dataclass
class Config:
    """A validated configuration."""

    path: Path | None
    directory: Path
    store_url: str
    sources: dict[str, InstanceConfig] = field(default_factory=dict)
    sinks: dict[str, InstanceConfig] = field(default_factory=dict)
    enrichers: dict[str, InstanceConfig] = field(default_factory=dict)
    batch_size: int = 500
    concurrency: int = field(default_factory=lambda: default_concurrency())
    #: "process": each source runs in a forked worker process, so parsing and
    #: enrichment use every core; "thread": in threads of the run's process
    workers: str = field(default_factory=lambda: default_workers())
    retry_attempts: int = 5
    retry_max_wait: float = 60.0
    identity_enabled: bool = True
    auto_link_threshold: float = 0.9
    fuzzy_threshold: int = 88
    influence: dict[str, float] = field(default_factory=dict)
    #: [privacy] opt_out: emails, domains (``@acme.example`` or ``acme.example``) and handles
    #: (``twitter:someone``) whose content is never synced
    opt_out: list[str] = field(default_factory=list)
    host: PluginHost | None = None

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "<config>"

    def resolved_options(self, inst: InstanceConfig) -> dict[str, Any]:
        """The instance's options with secret references resolved to :class:`Secret`."""
        opts = copy.deepcopy(inst.options)
        for key in inst.secret_keys:
            *parents, leaf = key.split(".")
            holder: Any = opts
            for p in parents:
                holder = holder.get(p) if isinstance(holder, dict) else None
            if isinstance(holder, dict) and isinstance(holder.get(leaf), str):
                value = resolve_reference(holder[leaf], where=f"{self.where}: {inst.label} key {key!r}", host=self.host, base=self.directory)
                holder[leaf] = Secret(value, holder[leaf])
        return opts


def find_config(path: str | Path | None) -> Path:
    """The config file to use: ``path``, else ``./crmsync.toml``."""
    p = Path(path) if path else Path(DEFAULT_CONFIG_NAME)
    if not p.exists():
        hint = "" if path else " (run 'crmsync init' to write a starter config, or pass --config)"
        msg = f"config file {p} not found{hint}"
        raise ConfigError(msg)
    return p


def load_config(path: str | Path | None, host: PluginHost, *, store_url: str | None = None) -> Config:
    """Read and validate a config file against the plugins in ``host``."""
    p = find_config(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        msg = f"{p}: not valid TOML: {exc}"
        raise ConfigError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{p}: not UTF-8 text: {exc}"
        raise ConfigError(msg) from None
    return parse_config(data, host, path=p.resolve(), store_url=store_url)


def parse_config(data: dict[str, Any], host: PluginHost, *, path: Path | None = None, store_url: str | None = None) -> Config:
    """Validate parsed config data (see :func:`load_config`)."""
    where = str(path) if path else "<config>"
    directory = path.parent if path else Path.cwd()
    _check_keys(data, _TOP_KEYS, where, "top level")
    store = data.get("store", {})
    _check_table(store, where, "[store]")
    _check_keys(store, _STORE_KEYS, where, "[store]")
    run = data.get("run", {})
    _check_table(run, where, "[run]")
    _check_keys(run, _RUN_KEYS, where, "[run]")

    ident = data.get("identity", {})
    _check_table(ident, where, "[identity]")
    _check_keys(ident, _IDENTITY_KEYS, where, "[identity]")

    url = store_url or os.environ.get("CRMSYNC_STORE_URL") or store.get("url")
    if url and url.startswith(("env:", "file:")):
        url = resolve_reference(url, where=f"{where}: [store] key 'url'", host=host, base=directory)
        register_secret_value(url)
    elif url and url == store.get("url") and url_password(url) is not None:
        register_secret_value(url_password(url) or "")
        msg = (
            f"{where}: [store] key 'url' holds a password: a config file must not. Put the URL in an environment "
            "variable (url = \"env:CRMSYNC_STORE_URL\") or a file readable only by you (url = \"file:/path/to/store-url\")"
        )
        raise ConfigError(msg)
    if url and url_password(url):
        register_secret_value(url_password(url) or "")  # from --store or the environment: never shown either
    if not url:
        db = Path(store.get("path", DEFAULT_STORE_PATH)).expanduser()
        if not db.is_absolute():
            db = directory / db
        url = f"sqlite:///{db}"

    cfg = Config(path=path, directory=directory, store_url=url, host=host)
    for key, typ in (("batch_size", int), ("concurrency", int), ("retry_attempts", int), ("retry_max_wait", (int, float))):
        if key in run:
            if not isinstance(run[key], typ) or isinstance(run[key], bool) or run[key] <= 0:
                msg = f"{where}: [run] key {key!r} must be a positive number, got {run[key]!r}"
                raise ConfigError(msg)
            setattr(cfg, key, run[key])
    if "workers" in run:
        if run["workers"] not in ("process", "thread"):
            msg = f"{where}: [run] key 'workers' must be \"process\" or \"thread\", got {run['workers']!r}"
            raise ConfigError(msg)
        if run["workers"] == "process" and not fork_available():
            msg = f"{where}: [run] workers = \"process\" needs os.fork (Linux, macOS); use \"thread\" here"
            raise ConfigError(msg)
        cfg.workers = run["workers"]

    privacy = data.get("privacy", {})
    _check_table(privacy, where, "[privacy]")
    _check_keys(privacy, _PRIVACY_KEYS, where, "[privacy]")
    if "opt_out" in privacy:
        values = privacy["opt_out"]
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            msg = f"{where}: [privacy] key 'opt_out' must be a list of emails, domains and handles (platform:name), got {values!r}"
            raise ConfigError(msg)
        cfg.opt_out = [v.strip() for v in values]
    if "enabled" in ident:
        cfg.identity_enabled = _flag(ident["enabled"], f"{where}: [identity] key 'enabled'")
    if "auto_link_threshold" in ident:
        value = ident["auto_link_threshold"]
        if not isinstance(value, int | float) or not 0 < value <= 1:
            msg = f"{where}: [identity] key 'auto_link_threshold' must be a number in (0, 1], got {value!r}"
            raise ConfigError(msg)
        cfg.auto_link_threshold = float(value)
    if "fuzzy_threshold" in ident:
        value = ident["fuzzy_threshold"]
        if not isinstance(value, int) or not 0 < value <= 100:
            msg = f"{where}: [identity] key 'fuzzy_threshold' must be an integer 1..100, got {value!r}"
            raise ConfigError(msg)
        cfg.fuzzy_threshold = value

    if "influence" in ident:

        table = ident["influence"]
        _check_table(table, where, "[identity.influence]")
        _check_keys(table, set(INFLUENCE_DEFAULTS), where, "[identity.influence]")
        for key, value in table.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                msg = f"{where}: [identity.influence] key {key!r} must be a number, got {value!r}"
                raise ConfigError(msg)
        cfg.influence = {k: float(v) for k, v in table.items()}

    host.collect()
    for kind in ("sources", "sinks", "enrichers"):
        section = data.get(kind, {})
        _check_table(section, where, f"[{kind}]")
        registry = getattr(host, kind)
        for name, table in section.items():
            label = f"[{kind}.{name}]"
            _check_table(table, where, label)
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", name):
                msg = f"{where}: {label}: instance names may use letters, digits, '_', '-' and '.'"
                raise ConfigError(msg)
            plugin = table.get("plugin")
            if not plugin:
                msg = f"{where}: {label}: missing key 'plugin'; available {kind}: {_choices(registry)}"
                raise ConfigError(msg)
            if plugin not in registry:
                msg = f"{where}: {label} key 'plugin': unknown {_SINGULAR[kind]} plugin {plugin!r}; available: {_choices(registry)}"
                broken = [f"{n}: {'; '.join(i.errors)}" for n, i in sorted(getattr(host, "infos", {}).items()) if i.errors]
                if broken:
                    msg += f". Plugins that failed to load (crmsync plugins shows them): {' | '.join(broken)}"
                raise ConfigError(msg)
            cls = registry[plugin]
            options = {k: v for k, v in table.items() if k not in COMMON_KEYS[kind]}
            options = validate_options(cls.config_schema, options, where=f"{where}: {label}")
            inst = InstanceConfig(
                kind=kind,
                name=name,
                plugin=plugin,
                options=options,
                enabled=_flag(table.get("enabled", True), f"{where}: [{kind}.{name}] key 'enabled'"),
                secret_keys=secret_paths(cls.config_schema),
            )
            if kind == "sinks" and "sources" in table:
                inst.sources = list(table["sources"])
            if kind == "sources" and "enrichers" in table:
                inst.enrichers = list(table["enrichers"])
            for key in inst.secret_keys:
                value: Any = options
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                if value is not None and not (isinstance(value, str) and ":" in value and value.split(":", 1)[0].isidentifier()):
                    msg = f"{where}: {label} key {key!r} is a secret: give a reference like 'env:NAME' or 'file:PATH', not the value"
                    raise ConfigError(msg)
            getattr(cfg, kind)[name] = inst

    for sink in cfg.sinks.values():
        for src in sink.sources or []:
            if src not in cfg.sources:
                msg = f"{where}: {sink.label} key 'sources': unknown source {src!r}; configured sources: {_choices(cfg.sources)}"
                raise ConfigError(msg)
    for source in cfg.sources.values():
        for enr in source.enrichers or []:
            if enr not in cfg.enrichers:
                msg = f"{where}: {source.label} key 'enrichers': unknown enricher {enr!r}; configured enrichers: {_choices(cfg.enrichers)}"
                raise ConfigError(msg)
    return cfg


def validate_options(schema: dict[str, Any], options: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Validate ``options`` against a plugin's JSON Schema; fill defaults.

    Unknown keys are errors (with the valid keys listed) unless the schema
    sets ``additionalProperties``. Raises :class:`ConfigError` listing every problem.
    """
    schema = dict(schema)
    schema.setdefault("type", "object")
    schema.setdefault("additionalProperties", False)
    props = schema.get("properties", {})
    filled = _fill_defaults(schema, copy.deepcopy(options))
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path)):
        problems.append(_format_error(err, props))
    if problems:
        msg = f"{where}: " + "; ".join(problems)
        raise ConfigError(msg)
    return filled


def _fill_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill ``default`` values of object properties, nested objects included."""
    if not isinstance(value, dict):
        return value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value and sub.get("type") == "object":
            value[key] = _fill_defaults(sub, value[key])
    return value


def _format_error(err: jsonschema.ValidationError, props: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    key = f"key {path!r}: " if path else ""
    secret = bool(err.absolute_path) and (props.get(str(err.absolute_path[0]), {}).get("secret") or "password" in path or "secret" in path or "token" in path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        valid = ", ".join(sorted(err.schema.get("properties", {}))) or "(none)"
        return f"{key}unknown key(s) {', '.join(map(repr, extra))}; valid keys: {valid}"
    if err.validator == "required":
        return f"{key}{err.message.replace('is a required property', 'is required')}"
    if err.validator == "enum":
        shown = "the given value" if secret else repr(err.instance)
        return f"{key}{shown} is not a valid choice; valid choices: {', '.join(map(str, err.validator_value))}"
    if secret:
        return f"{key}invalid value ({err.validator})"
    return f"{key}{err.message}"


def _flag(value: Any, what: str) -> bool:
    """A TOML boolean; ``"false"`` (a string) is an error, not true."""
    if not isinstance(value, bool):
        msg = f"{what} must be true or false (without quotes), got {value!r}"
        raise ConfigError(msg)
    return value


def _check_table(value: Any, where: str, label: str) -> None:
    if not isinstance(value, dict):
        msg = f"{where}: {label} must be a table, got {type(value).__name__}"
        raise ConfigError(msg)


def _check_keys(table: dict[str, Any], valid: set[str], where: str, label: str) -> None:
    extra = sorted(set(table) - valid)
    if extra:
        msg = f"{where}: {label}: unknown key(s) {', '.join(map(repr, extra))}; valid keys: {', '.join(sorted(valid))}"
        raise ConfigError(msg)


def _choices(names: Any) -> str:
    return ", ".join(sorted(names)) or "(none)"


__all__ = [
    "Config", "InstanceConfig", "Secret", "find_config", "load_config", "parse_config", "redact", "redact_url",
    "register_secret_value", "resolve_reference", "secret_paths", "validate_options",
]
