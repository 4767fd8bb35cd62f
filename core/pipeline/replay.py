"""``crmsync quarantine replay``: process quarantined input again."""

from __future__ import annotations

from typing import Any

from ..contract.base import Checkpoint, Context, Rejected
from ..host.config import Config
from ..contract.errors import CrmsyncError
from ..host.plugins import PluginHost
from ..contract.schema import Identity, Interaction
from .deliver.rejections import sink_of
from ..store import Store


def replay(config: Config, store: Store, host: PluginHost, *, ids: list[int] | None = None, source: str | None = None) -> list[dict[str, Any]]:
    """Replay quarantined records through their source's :meth:`Source.replay`.

    Returns one result per record: ``replayed`` (now stored, marked so),
    ``open`` (rejected again, reason updated) or ``error`` (e.g. the source
    is no longer configured).
    """
    if ids:
        items = [i for i in (store.quarantine.item(n) for n in ids) if i is not None]
        missing = set(ids) - {i.id for i in items}
        results = [{"id": n, "status": "error", "detail": "no such quarantined record"} for n in sorted(missing)]
    else:
        items = store.quarantine.items(source=source, status="open")
        results = []
    store.locks.acquire_lock("replay", wait=True, timeout=60)
    try:
        context = Context(config_dir=config.directory, run_id=None)
        sources: dict[str, Any] = {}
        for item in items:
            if sink_of(item.source):
                results.append({"id": item.id, "status": "open", "detail": f"a record sink {sink_of(item.source)!r} could not write: it stays in that sink's backlog and every run tries it again (dismiss it to stop)"})
                continue
            inst = config.sources.get(item.source)
            if inst is None:
                results.append({"id": item.id, "status": "error", "detail": f"source {item.source!r} is not configured any more"})
                continue
            if item.source not in sources:
                cls = host.get("sources", inst.plugin)
                sources[item.source] = cls(inst.name, config.resolved_options(inst), context)
            src = sources[item.source]
            recs: list[Interaction] = []
            people: list[Identity] = []
            bad: list[Rejected] = []
            try:
                for rec in src.replay(item.ref, item.raw or b""):
                    if isinstance(rec, Interaction):
                        recs.append(rec)
                    elif isinstance(rec, Identity):
                        people.append(rec)
                    elif isinstance(rec, Rejected):
                        bad.append(rec)
                    elif isinstance(rec, Checkpoint):
                        continue
            except CrmsyncError as exc:
                results.append({"id": item.id, "status": "error", "detail": str(exc)})
                continue
            if bad:
                # keep the same quarantine entry: same source, ref and raw
                store.interactions.write_batch(item.source, [], rejected=[Rejected(item.ref, bad[0].reason, item.raw, bad[0].error_type)])
                results.append({"id": item.id, "status": "open", "detail": bad[0].reason})
                continue
            res = store.interactions.write_batch(item.source, recs, identities_=people)
            store.quarantine.set_status(item.id, "replayed")
            results.append({"id": item.id, "status": "replayed", "detail": f"{len(recs)} interaction(s): {res.new} new, {res.updated} updated"})
    finally:
        store.locks.release()
    return results
