"""The plugin conformance kit (pytest), like singer-sdk's ``get_tap_test_class``.

A source plugin's test module::

    from crmsync.testing import get_source_test_class
    from my_plugin import MySource

    TestMySource = get_source_test_class(
        MySource,
        config=lambda tmp: {"path": str(make_fixture(tmp))},
        bad_config=lambda tmp: {"path": str(make_broken_fixture(tmp))},
    )

A sink plugin's::

    from crmsync.testing import get_sink_test_class

    TestMySink = get_sink_test_class(MySink, config=lambda tmp: {...}, read_back=my_read_back)

Each test runs the plugin through the real runner and a temporary SQLite
store, exactly as ``crmsync run`` would. ``config`` may be a dict or a
function of a temporary directory (for fixture files); relative paths in it
are relative to that directory.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from .contract.base import Checkpoint, Context, Delivery, Sink, Source
from .host.config import Config, InstanceConfig, secret_paths, validate_options
from .contract.errors import ConfigError
from .contract.hookspecs import hookimpl
from .host.plugins import PluginHost, PluginInfo
from .contract.schema import Identity, Interaction, ItemReviewed, Rating, make_interaction_id
from .store import Store

ConfigArg = dict[str, Any] | Callable[[Path], dict[str, Any]]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

__all__ = ["get_sink_test_class", "get_source_test_class", "kit_run", "sample_interactions"]


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
    from .pipeline.run import Runner

    store = Store(cfg.store_url)
    try:
        return Runner(cfg, store, cfg.host).run(**kwargs)  # type: ignore[arg-type]
    finally:
        store.dispose()


def _resolve(config: ConfigArg | None, tmp: Path) -> dict[str, Any] | None:
    if config is None:
        return None
    return copy.deepcopy(config(tmp) if callable(config) else config)


def _read_all(cls: type[Source], options: dict[str, Any], tmp: Path, state: dict[str, Any] | None = None) -> list[Any]:
    # the options as the runner hands them over: validated, secret references resolved
    cfg = kit_config(tmp, kit_host(sources=[cls]), sources={"kit": (cls.name, options)})
    opts = cfg.resolved_options(cfg.sources["kit"])
    src = cls("kit", opts, Context(config_dir=tmp))
    return list(src.read(state))


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
            items = _read_all(source_class, _resolve(config, tmp_path), tmp_path)
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
                assert isinstance(item, Interaction | Identity | Checkpoint) or type(item).__name__ == "Rejected"

        def test_ids_are_deterministic(self, tmp_path: Path) -> None:
            options = _resolve(config, tmp_path)

            def ids() -> dict[str, str]:
                return {r.interaction_id: r.content_hash for r in _read_all(source_class, options, tmp_path) if isinstance(r, Interaction)}

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
            items = _read_all(source_class, options, tmp_path)
            checkpoints = [i for i in items if isinstance(i, Checkpoint)]
            assert checkpoints, "the source never yields a Checkpoint: every run would read everything again"
            first = {i.interaction_id for i in items if isinstance(i, Interaction)}
            again = _read_all(source_class, options, tmp_path, state=checkpoints[-1].state)
            repeated = sorted(first & {i.interaction_id for i in again if isinstance(i, Interaction)})
            assert not repeated, (
                f"handed its last bookmark, the source yielded {len(repeated)} interaction(s) it had yielded before (e.g. {repeated[0]}): "
                "it ignores its bookmark, or yields a Checkpoint before the records it covers"
            )

        def test_bad_input_goes_to_quarantine(self, tmp_path: Path) -> None:
            import pytest

            if bad_config is None:
                pytest.skip("no bad_config given to get_source_test_class")
            cfg = self._cfg(tmp_path, _resolve(bad_config, tmp_path))
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
def sample_interactions(variant: int = 0) -> list[Interaction]:
    """A fixed set of interactions covering the schema, hostile content included.

    ``variant=1`` edits one of them (new title and body), as a re-read would.
    """
    base = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    people = [
        Identity(name="Ann Example", emails=["ann@example.org"]),
        Identity(name="=cmd|' /C calc'!A0", emails=["attacker@example.net"]),
        Identity(name="Zoë Ångström", handles=["twitter:zoe"], profile_urls=["https://x.com/zoe"]),
    ]
    titles = [
        "Plain title",
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+SUM(1+1)*cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\tTabbed",
        "\rReturn",
        "Comma, \"quotes\" and\nnewline",
        "Ünïcödé ✓ 漢字",
        "<script>alert(1)</script>",
    ]
    out = []
    for n in range(12):
        title = titles[n % len(titles)]
        body = f"Body {n}: line one\nline two, with \"quotes\""
        if variant == 1 and n == 3:
            title, body = "Edited title", "Edited body"
        kwargs: dict[str, Any] = {}
        if n % 4 == 0:
            kwargs["rating"] = Rating(value=(n % 5) + 1)
            kwargs["item_reviewed"] = ItemReviewed(name="Acme Rocket", id="ACME-1")
        native = f"kit-{n:03d}" if n % 2 else f"https://kit.example/items/{n}"
        out.append(
            Interaction.create(
                source="kit_source",
                channel="review" if "rating" in kwargs else "feed",
                native_id=native,
                scope="kit.example",
                kind="review" if "rating" in kwargs else "post",
                url=f"https://kit.example/items/{n}",
                title=title,
                body_text=body,
                body_html=f"<p onclick='x()'>{body}</p><script>steal()</script>",
                published=base + timedelta(hours=n),
                author=people[n % len(people)],
                tags=["kit", f"n{n}"],
                **kwargs,
            )
        )
    return out


class SampleSource(Source):
    """Emits :func:`sample_interactions` (the sink kit's input)."""

    name = "crmsync_kit_samples"
    channel = "feed"
    config_schema = {"type": "object", "properties": {"variant": {"type": "integer", "default": 0}}}

    def read(self, state: dict[str, Any] | None) -> Iterator[Any]:
        for rec in sample_interactions(self.config["variant"]):
            yield rec.model_copy(update={"source": self.instance})
        yield Checkpoint({"variant": self.config["variant"]})


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
            cfg = kit_config(tmp_path, host, sources={"kit_source": (SampleSource.name, {"variant": 0})}, sinks={"kit": (sink_class.name, _resolve(unreachable_config, tmp_path))})
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

    SinkConformance.__name__ = f"Test{sink_class.__name__}Conformance"
    return SinkConformance
