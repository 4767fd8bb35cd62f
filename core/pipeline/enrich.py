"""Enrich: the source's enricher chain over each batch (language, sentiment,
mentions, triage, or a plugin's). An enricher that fails leaves the batch as
it was (stored unenriched, the error reported); one that returns a different
number of records is treated as failed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..contract.base import Context, Enricher
from ..contract.errors import FatalError
from ..contract.schema import Interaction
from ..host.config import Config, InstanceConfig
from ..host.plugins import PluginHost
from .report import describe

log = logging.getLogger("crmsync.pipeline.enrich")


def make_enrichers(config: Config, host: PluginHost, inst: InstanceConfig, context: Context) -> list[Enricher]:
    """The enrichers of source ``inst``: its own list, or every enabled one."""
    names = inst.enrichers if inst.enrichers is not None else [n for n, e in config.enrichers.items() if e.enabled]
    out = []
    for n in names:
        e = config.enrichers[n]
        cls = host.get("enrichers", e.plugin)
        out.append(cls(n, config.resolved_options(e), context))
    return out


class Enrichment:
    """One source's chain, made when the first batch needs it (a source with
    nothing new loads no models)."""

    def __init__(self, make: Callable[[], list[Enricher]], source: str, errors: list[str]) -> None:
        self._make = make
        self._chain: list[Enricher] | None = None
        self.source = source
        self.errors = errors

    def __call__(self, records: list[Interaction]) -> list[Interaction]:
        if not records:
            return records
        if self._chain is None:
            self._chain = self._make()
        for enricher in self._chain:
            try:
                out = enricher.enrich_batch(records)
                if len(out) != len(records):
                    msg = f"enricher {enricher.instance!r} returned {len(out)} records for {len(records)}"
                    raise FatalError(msg)
                records = out
            except Exception as exc:  # noqa: BLE001 - records are kept unenriched
                msg = f"enricher {enricher.instance} failed, records stored without it: {describe(exc)}"
                if msg not in self.errors:
                    self.errors.append(msg)
                    log.error("source %s: %s", self.source, msg)
        return records
