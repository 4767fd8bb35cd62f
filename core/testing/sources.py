"""The source kit: ``get_source_test_class``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from ..contract.base import Checkpoint, Context, Source
from ..contract.errors import ConfigError
from ..contract.schema import Identity, Interaction, make_interaction_id
from ..host.config import Config, validate_options
from ..store import Store

from .harness import ConfigArg, read_source, _resolve, kit_config, kit_host, kit_run

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def get_source_test_class(
    source_class: type[Source],
    config: ConfigArg,
    *,
    bad_config: ConfigArg | None = None,
    min_records: int = 1,
) -> type:
    """A pytest class that checks ``source_class`` against the crmsync contract.

    :param config: options of a working instance (or a function of a temp dir).
    :param bad_config: options pointing at bad input: the kit checks it goes to
        the quarantine with a reason, and the run still finishes.
    :param min_records: the least number of records ``config`` must produce.
    """

    class SourceConformance:
        plugin = source_class

        def _cfg(self, tmp: Path, options: dict[str, Any]) -> Config:
            host = kit_host(sources=[source_class])
            return kit_config(tmp, host, sources={"kit": (source_class.name, options)})

        def test_class_attributes(self) -> None:
            assert source_class.name, "a source class needs a 'name'"
            assert source_class.channel, "a source class needs a 'channel'"
            jsonschema.Draft202012Validator.check_schema(source_class.config_schema)

        def test_config_validation(self, tmp_path: Path) -> None:
            options = _resolve(config, tmp_path)
            validate_options(source_class.config_schema, options, where="kit")
            try:
                validate_options(source_class.config_schema, {**options, "no_such_option_xyz": 1}, where="kit")
            except ConfigError as exc:
                assert "no_such_option_xyz" in str(exc)
            else:
                raise AssertionError("an unknown option must be a ConfigError")
            for key in source_class.config_schema.get("required", []):
                broken = {k: v for k, v in options.items() if k != key}
                try:
                    validate_options(source_class.config_schema, broken, where="kit")
                except ConfigError as exc:
                    assert key in str(exc)
                else:
                    raise AssertionError(f"a missing required option {key!r} must be a ConfigError")

        def test_emits_valid_records(self, tmp_path: Path) -> None:
            items = read_source(source_class, _resolve(config, tmp_path), tmp_path)
            records = [i for i in items if isinstance(i, Interaction | Identity)]
            assert len(records) >= min_records, f"expected at least {min_records} records, got {len(records)}"
            schema = Interaction.model_json_schema()
            for rec in records:
                if isinstance(rec, Identity):
                    Identity.model_validate_json(rec.model_dump_json())
                    continue
                data = rec.to_json_dict()
                jsonschema.validate(data, schema)
                again = Interaction.model_validate_json(rec.model_dump_json())
                assert again == rec, "a record must survive a JSON round trip unchanged"
                assert rec.source == "kit", f"records carry the instance name as source (self.interaction() does), not {rec.source!r}"
                assert rec.channel == source_class.channel, f"records carry the source's channel {source_class.channel!r}, not {rec.channel!r}"
                assert rec.interaction_id == make_interaction_id(rec.channel, rec.native_id, rec.scope), "interaction_id must follow from channel, scope and native id (build records with self.interaction())"
                assert rec.content_hash == rec.compute_content_hash(), "content_hash must be the hash of the content fields"
                if rec.in_reply_to is not None:
                    assert _UUID.match(rec.in_reply_to), (
                        f"in_reply_to must hold the parent's interaction_id (make_interaction_id of its channel, scope and native id), "
                        f"not {rec.in_reply_to!r}, which looks like a native id"
                    )
            for item in items:
                assert isinstance(item, Interaction | Identity | Checkpoint) or type(item).__name__ in ("Rejected", "Takedown"), (
                    f"read() yielded a {type(item).__name__}; a source yields Interaction, Identity, Rejected, Takedown or Checkpoint"
                )

        def test_ids_are_deterministic(self, tmp_path: Path) -> None:
            options = _resolve(config, tmp_path)

            def ids() -> dict[str, str]:
                return {r.interaction_id: r.content_hash for r in read_source(source_class, options, tmp_path) if isinstance(r, Interaction)}

            first, second = ids(), ids()
            assert first == second, "two reads of the same input must give the same ids and content hashes"

        def test_incremental_rerun_yields_nothing_new(self, tmp_path: Path) -> None:
            cfg = self._cfg(tmp_path, _resolve(config, tmp_path))
            first = kit_run(cfg)
            assert first.sources[0].status == "ok", first.sources[0].errors
            second = kit_run(cfg)
            s = second.sources[0]
            assert s.status == "ok", s.errors
            assert (s.new, s.updated) == (0, 0), f"re-run found {s.new} new and {s.updated} updated records"
            refreshed = kit_run(cfg, full_refresh=True).sources[0]
            assert (refreshed.new, refreshed.updated) == (0, 0), "a full refresh of unchanged input must change nothing"

        def test_rerun_from_the_bookmark_yields_nothing_old(self, tmp_path: Path) -> None:
            """What the source *yields* when handed its own bookmark (the store would hide a
            source that re-reads everything: it de-duplicates)."""
            options = _resolve(config, tmp_path)
            items = read_source(source_class, options, tmp_path)
            checkpoints = [i for i in items if isinstance(i, Checkpoint)]
            assert checkpoints, "the source never yields a Checkpoint: every run would read everything again"
            first = {i.interaction_id for i in items if isinstance(i, Interaction)}
            again = read_source(source_class, options, tmp_path, state=checkpoints[-1].state)
            repeated = sorted(first & {i.interaction_id for i in again if isinstance(i, Interaction)})
            assert not repeated, (
                f"handed its last bookmark, the source yielded {len(repeated)} interaction(s) it had yielded before (e.g. {repeated[0]}): "
                "it ignores its bookmark, or yields a Checkpoint before the records it covers"
            )

        def test_a_killed_read_resumes_from_its_bookmark_without_duplicates(self, tmp_path: Path) -> None:
            """A run killed after its first committed batch (the store keeps the records
            before the first Checkpoint and that bookmark), then a run from the
            bookmark: together they must give each record of a clean read once, with
            the same ids (a source whose ids change between reads would double)."""
            options = _resolve(config, tmp_path)
            full = [i.interaction_id for i in read_source(source_class, options, tmp_path) if isinstance(i, Interaction)]
            # the first run, killed right after the first checkpoint that follows a record;
            # the bookmark as the store would hold it (serialized then: a source may go on
            # updating the state object afterwards)
            cfg = kit_config(tmp_path, kit_host(sources=[source_class]), sources={"kit": (source_class.name, options)})
            src = source_class("kit", cfg.resolved_options(cfg.sources["kit"]), Context(config_dir=tmp_path))
            before: list[str] = []
            bookmark = None
            for item in src.read(None):
                if isinstance(item, Interaction):
                    before.append(item.interaction_id)
                elif isinstance(item, Checkpoint) and before:
                    bookmark = json.loads(json.dumps(item.state, default=str))
                    break
            if bookmark is None:
                return  # one checkpoint at the end: nothing to resume (covered by the bookmark test)
            rest = [i.interaction_id for i in read_source(source_class, options, tmp_path, state=bookmark) if isinstance(i, Interaction)]
            unknown = sorted(set(rest) - set(full))
            assert not unknown, f"resumed from its bookmark, the source yielded {len(unknown)} id(s) a clean read does not have (e.g. {unknown[0]}): its ids are not stable"
            missing = sorted(set(full) - set(before) - set(rest))
            assert not missing, f"killed after its first checkpoint and resumed, the source never yielded {len(missing)} record(s) (e.g. {missing[0]}): its bookmark runs ahead of the records"
            assert len(rest) == len(set(rest)), "a resumed read yields each record once"

        def test_bad_input_goes_to_quarantine(self, tmp_path: Path) -> None:
            import pytest

            if bad_config is None:
                pytest.skip("no bad_config given to get_source_test_class")
            cfg = self._cfg(tmp_path, _resolve(bad_config, tmp_path, deterministic=False))
            report = kit_run(cfg)
            s = report.sources[0]
            assert s.quarantined > 0, "bad input must be quarantined"
            assert report.exit_code == 1
            store = Store(cfg.store_url)
            try:
                items = store.quarantine.items(source="kit")
            finally:
                store.dispose()
            assert items and all(i.reason and i.ref for i in items), "each quarantined record needs a ref and a reason"

    SourceConformance.__name__ = f"Test{source_class.__name__}Conformance"
    return SourceConformance


# sinks ---------------------------------------------------------------------
