"""The sink kit: ``get_sink_test_class``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from ..contract.base import Context, Deletion, Delivery, Sink
from ..contract.errors import ConfigError
from ..host.config import Config, validate_options
from ..store import Store

from .harness import ConfigArg, _resolve, kit_config, kit_host, kit_run
from .samples import SampleSource, sample_interactions


def get_sink_test_class(
    sink_class: type[Sink],
    config: ConfigArg,
    *,
    read_back: Callable[[dict[str, Any], Path], list[dict[str, Any]]],
    unreachable_config: ConfigArg | None = None,
) -> type:
    """A pytest class that checks ``sink_class`` against the crmsync contract.

    :param config: options of a working instance (or a function of a temp dir).
        It must give the same target each time it is called for one directory.
    :param read_back: ``read_back(options, directory)`` returns what the target
        holds after applying everything written (upserts applied), one dict
        per record with at least ``interaction_id`` and ``title``.
    :param unreachable_config: options whose target cannot be written (a closed
        port, a read-only directory): the kit checks the sink fails with
        ``RetriableError``/``FatalError`` and confirms nothing.
    """

    class SinkConformance:
        plugin = sink_class

        def _cfg(self, tmp: Path, variant: int = 0) -> tuple[Config, dict[str, Any]]:
            options = _resolve(config, tmp)
            host = kit_host(sources=[SampleSource], sinks=[sink_class])
            cfg = kit_config(tmp, host, sources={"kit_source": (SampleSource.name, {"variant": variant})}, sinks={"kit": (sink_class.name, options)})
            return cfg, cfg.sinks["kit"].options

        def test_class_attributes(self) -> None:
            assert sink_class.name, "a sink class needs a 'name'"
            jsonschema.Draft202012Validator.check_schema(sink_class.config_schema)

        def test_delivers_everything_once(self, tmp_path: Path) -> None:
            cfg, options = self._cfg(tmp_path)
            report = kit_run(cfg)
            assert report.sinks[0].status == "ok", report.sinks[0].errors
            expected = {r.interaction_id for r in sample_interactions()}
            rows = read_back(options, tmp_path)
            ids = [r["interaction_id"] for r in rows]
            assert sorted(ids) == sorted(expected), "the target must hold every interaction exactly once"
            assert report.sinks[0].delivered == len(expected)
            again = kit_run(cfg)
            assert again.sinks[0].delivered == 0, "a re-run must deliver nothing new"

        def test_redelivery_is_idempotent(self, tmp_path: Path) -> None:
            cfg, options = self._cfg(tmp_path)
            kit_run(cfg)
            store = Store(cfg.store_url)
            try:
                store.ledger.reset("kit")  # as if every receipt was lost in a crash
            finally:
                store.dispose()
            report = kit_run(cfg)
            assert report.sinks[0].delivered == len(sample_interactions())
            ids = [r["interaction_id"] for r in read_back(options, tmp_path)]
            assert len(ids) == len(set(ids)) == len(sample_interactions()), "delivering again must not duplicate"

        def test_edit_is_an_update(self, tmp_path: Path) -> None:
            cfg, options = self._cfg(tmp_path)
            kit_run(cfg)
            cfg2, _ = self._cfg(tmp_path, variant=1)
            report = kit_run(cfg2)
            s = report.sinks[0]
            assert s.status == "ok", f"delivering an edit: {s.errors}"
            assert (s.created, s.updated) == (0, 1), f"expected one update, got created={s.created} updated={s.updated}"
            edited = sample_interactions(1)[3].interaction_id
            rows = {r["interaction_id"]: r for r in read_back(options, tmp_path)}
            assert len(rows) == len(sample_interactions()), f"the target holds {len(rows)} records after an edit, expected {len(sample_interactions())}"
            assert rows[edited]["title"] == "Edited title", "the edited record does not hold the new title"
            again = kit_run(cfg2).sinks[0]
            assert again.delivered == 0, (
                f"a re-run after the edit delivered {again.delivered} again: the sink's receipts must carry the version it was given "
                f"(Delivery.receipt() does); {again.errors}"
            )

        def test_an_unreachable_target_fails_and_confirms_nothing(self, tmp_path: Path) -> None:
            import pytest

            if unreachable_config is None:
                pytest.skip("no unreachable_config given to get_sink_test_class")
            host = kit_host(sources=[SampleSource], sinks=[sink_class])
            cfg = kit_config(tmp_path, host, sources={"kit_source": (SampleSource.name, {"variant": 0})}, sinks={"kit": (sink_class.name, _resolve(unreachable_config, tmp_path, deterministic=False))})
            s = kit_run(cfg).sinks[0]
            assert s.status == "failed", (
                f"a sink whose target cannot be written must fail (raise RetriableError or FatalError), not report {s.status!r}: "
                "does it swallow transport errors?"
            )
            assert s.delivered == 0 and s.backlog == len(sample_interactions()), (
                f"a sink that wrote nothing confirmed {s.delivered} record(s): receipts are only for what is durable"
            )

        def test_config_validation(self, tmp_path: Path) -> None:
            options = _resolve(config, tmp_path) or {}
            validate_options(sink_class.config_schema, options, where="kit")
            try:
                validate_options(sink_class.config_schema, {**options, "no_such_option_xyz": 1}, where="kit")
            except ConfigError as exc:
                assert "no_such_option_xyz" in str(exc), f"the error for an unknown option must name it: {exc}"
            else:
                raise AssertionError("an unknown sink option must be a ConfigError")
            for key in sink_class.config_schema.get("required", []):
                broken = {k: v for k, v in options.items() if k != key}
                try:
                    validate_options(sink_class.config_schema, broken, where="kit")
                except ConfigError as exc:
                    assert key in str(exc), f"the error for a missing required option must name it: {exc}"
                else:
                    raise AssertionError(f"a missing required option {key!r} must be a ConfigError")

        def test_parallel_parts_do_not_collide(self, tmp_path: Path) -> None:
            """A ``parallel`` sink: two parts of one run, interleaved, lose nothing."""
            import pytest

            if not getattr(sink_class, "parallel", False):
                pytest.skip("the sink is not parallel")
            cfg, _options = self._cfg(tmp_path)
            options = cfg.resolved_options(cfg.sinks["kit"])
            records = sample_interactions()
            halves = [records[: len(records) // 2], records[len(records) // 2 :]]
            sinks = [sink_class("kit", options, Context(config_dir=tmp_path, run_id="kit-run-0001", part=k)) for k in (0, 1)]
            receipts: list[Any] = []
            for sink in sinks:
                sink.open()
            for sink, half in zip(sinks, halves, strict=True):
                receipts += list(sink.write([Delivery(r, 1, "create") for r in half]) or [])
            for sink in sinks:
                receipts += list(sink.flush())
                sink.close()
            assert sorted(r.interaction_id for r in receipts) == sorted(r.interaction_id for r in records), "every delivery needs its receipt"
            ids = [r["interaction_id"] for r in read_back(_options, tmp_path)]
            assert sorted(ids) == sorted(r.interaction_id for r in records), "two parts of one run overwrote each other"

        def test_a_kill_between_write_and_ledger_sends_nothing_twice(self, tmp_path: Path) -> None:
            """SIGKILL right after the sink's write (and after its flush), before the ledger
            records the receipts: the next run completes the target, each record once."""
            import os
            import signal

            import pytest

            if not hasattr(os, "fork"):
                pytest.skip("needs os.fork")
            for n, point in enumerate(("sink.after_write:1", "sink.after_flush:1")):
                tmp = tmp_path / f"k{n}"
                tmp.mkdir()
                cfg, options = self._cfg(tmp)
                pid = os.fork()
                if pid == 0:  # the run to kill
                    from ..host import failpoints

                    os.environ["CRMSYNC_FAILPOINTS"] = point
                    failpoints._points = None
                    try:
                        kit_run(cfg)
                    finally:
                        os._exit(0)  # not reached when the failpoint fires
                _, status = os.waitpid(pid, 0)
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the run did not reach {point}"
                report = kit_run(cfg)
                assert report.sinks[0].status == "ok", report.sinks[0].errors
                ids = [r["interaction_id"] for r in read_back(options, tmp)]
                assert sorted(ids) == sorted(r.interaction_id for r in sample_interactions()), (
                    f"after a kill at {point} the target must hold every interaction exactly once: writes must upsert by interaction_id"
                )

        def test_delete_removes_what_it_wrote(self, tmp_path: Path) -> None:
            """A sink that implements ``delete`` (erasure, takedowns) removes those records
            from the target, and deleting them again succeeds."""
            import pytest

            if sink_class.delete is Sink.delete:
                pytest.skip("the sink does not implement delete (forget names it and the ids to remove by hand)")
            cfg, options = self._cfg(tmp_path)
            kit_run(cfg)
            store = Store(cfg.store_url)
            try:
                entries = store.ledger.entries("kit")
            finally:
                store.dispose()
            records = sample_interactions()
            doomed = [Deletion(r.interaction_id, entries[r.interaction_id][0], entries[r.interaction_id][1]) for r in records[:2]]
            for _attempt in range(2):
                sink = sink_class("kit", cfg.resolved_options(cfg.sinks["kit"]), Context(config_dir=tmp_path, run_id="kit-delete"))
                sink.open()
                try:
                    gone = sink.delete(doomed)
                finally:
                    sink.close()
                assert gone is None or sorted(gone) == sorted(d.interaction_id for d in doomed), f"delete must return the ids it removed, got {gone}"
            left = sorted(r["interaction_id"] for r in read_back(options, tmp_path))
            assert left == sorted(r.interaction_id for r in records[2:]), "the deleted records must be gone from the target, the others kept"

    SinkConformance.__name__ = f"Test{sink_class.__name__}Conformance"
    return SinkConformance
