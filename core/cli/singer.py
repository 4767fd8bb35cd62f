"""Singer interop: any crmsync source as a Singer tap (built on singer-sdk).

``crmsync tap PLUGIN --config c.json [--state s.json] [--catalog cat.json]``
(or the ``tap-crmsync-<plugin>`` executables) runs a source plugin as a Singer
tap: the ``interactions`` stream carries the shared schema with
``interaction_id`` as primary key, the source's bookmark travels as Singer
STATE, and the records are normalized (and enriched, with ``enrichers`` in
the config). The Singer config holds the plugin's options, plus:

* ``enrichers``: enricher plugins to apply, e.g. ``["language", "sentiment"]``;
* ``instance``: the source name recorded on the interactions (default: the plugin);
* ``quarantine_file``: append rejected input here as JSON lines (default: log only).

Needs ``pip install 'crmsync[singer]'``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..contract.base import Checkpoint, Context, Rejected
from ..host.config import resolve_reference, secret_paths, validate_options, Secret
from ..contract.errors import ConfigError
from ..host.plugins import get_host
from ..contract.schema import Identity, Interaction, flat_json_schema as stream_schema

log = logging.getLogger("crmsync.singer")


def make_tap_class(plugin: str) -> type:
    """A singer-sdk ``Tap`` class running the source plugin ``plugin``."""
    try:
        from singer_sdk import Stream, Tap
    except ImportError as exc:  # pragma: no cover - depends on the extra
        msg = "Singer interop needs singer-sdk: pip install 'crmsync[singer]'"
        raise ConfigError(msg) from exc
    host = get_host()
    host.collect()
    if plugin not in host.sources:
        msg = f"unknown source plugin {plugin!r}; available: {', '.join(sorted(host.sources))}"
        raise ConfigError(msg)
    source_cls = host.sources[plugin]
    own = source_cls.config_schema.get("properties", {})
    extra_props = {
        "enrichers": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Enricher plugins to apply, in order."},
        "instance": {"type": "string", "description": "Source name recorded on the interactions (default: the plugin name)."},
        "quarantine_file": {"type": "string", "description": "Append rejected input here as JSON lines."},
    }

    def make_source(tap: Any) -> tuple[Any, list[Any]]:
        cfg = {k: v for k, v in dict(tap.config).items() if k in own}
        options = validate_options(source_cls.config_schema, cfg, where=f"tap-crmsync-{plugin} config")
        for path in secret_paths(source_cls.config_schema):
            *parents, leaf = path.split(".")
            holder: Any = options
            for p in parents:
                holder = holder.get(p) if isinstance(holder, dict) else None
            if isinstance(holder, dict) and isinstance(holder.get(leaf), str):
                holder[leaf] = Secret(resolve_reference(holder[leaf], where=f"config key {path!r}", host=host), holder[leaf])
        instance = tap.config.get("instance") or plugin
        context = Context(config_dir=Path.cwd())
        enrichers = []
        for name in tap.config.get("enrichers") or []:
            if name not in host.enrichers:
                msg = f"unknown enricher {name!r}; available: {', '.join(sorted(host.enrichers))}"
                raise ConfigError(msg)
            ecls = host.enrichers[name]
            enrichers.append(ecls(name, validate_options(ecls.config_schema, {}, where=name), context))
        return source_cls(instance, options, context), enrichers

    def quarantine(tap: Any, rej: Rejected) -> None:
        log.warning("rejected %s: %s", rej.ref, rej.reason)
        path = tap.config.get("quarantine_file")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"ref": rej.ref, "reason": rej.reason, "raw": (rej.raw or b"").decode("utf-8", "replace")}) + "\n")

    class InteractionsStream(Stream):
        name = "interactions"
        primary_keys = ("interaction_id",)
        replication_key = None
        schema = stream_schema(Interaction)

        def get_records(self, context: Any) -> Any:
            source, enrichers = make_source(self._tap)
            state = self.stream_state.get("crmsync_bookmark")
            for item in source.read(state):
                if isinstance(item, Interaction):
                    for e in enrichers:
                        item = e.enrich(item)
                    yield item.to_json_dict()
                elif isinstance(item, Checkpoint):
                    # every record before it has been written: the bookmark may travel
                    self.stream_state["crmsync_bookmark"] = item.state
                elif isinstance(item, Rejected):
                    quarantine(self._tap, item)

    class IdentitiesStream(Stream):
        name = "identities"
        primary_keys = ("identity_id",)
        replication_key = None
        schema = stream_schema(Identity)

        def get_records(self, context: Any) -> Any:
            source, _ = make_source(self._tap)
            state = self.stream_state.get("crmsync_bookmark")
            for item in source.read(state):
                if isinstance(item, Identity) and item.identity_id:
                    yield item.model_dump(mode="json")
                elif isinstance(item, Checkpoint):
                    self.stream_state["crmsync_bookmark"] = item.state

    streams = [IdentitiesStream] if source_cls.channel == "crm" else [InteractionsStream]

    class CrmsyncTap(Tap):
        name = f"tap-crmsync-{plugin.replace('_', '-')}"
        config_jsonschema = {"type": "object", "properties": {**own, **extra_props}, "required": list(source_cls.config_schema.get("required", []))}

        def discover_streams(self) -> list[Any]:
            return [s(self) for s in streams]

    CrmsyncTap.__name__ = f"TapCrmsync{plugin.title().replace('_', '')}"
    return CrmsyncTap


def run_tap(plugin: str, args: list[str]) -> None:
    """Run the tap's singer-sdk CLI with ``args`` (``--config``, ``--state``, ``--discover`` ...)."""
    make_tap_class(plugin).cli.main(args=args, prog_name=f"tap-crmsync-{plugin}")


def _entry(plugin: str) -> Any:
    def main() -> None:
        run_tap(plugin, sys.argv[1:])

    return main


rss = _entry("rss")
email = _entry("email")
reviews = _entry("reviews")
crm_csv = _entry("crm_csv")
