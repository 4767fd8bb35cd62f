"""The conformance kit catches broken plugins (so a green kit means something)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

import crmsync
from crmsync.testing import get_sink_test_class, get_source_test_class

_counter = itertools.count()


class UnstableIdSource(crmsync.Source):
    """Breaks determinism: a new native id on every read."""

    name = "unstable"
    channel = "feed"

    def read(self, state):
        yield self.interaction(native_id=f"n-{next(_counter)}", scope="s", kind="post", title="t")


class NoQuarantineSource(crmsync.Source):
    """Drops bad input silently instead of quarantining it."""

    name = "silent"
    channel = "feed"
    config_schema = {"type": "object", "properties": {"bad": {"type": "boolean", "default": False}}}

    def read(self, state):
        yield self.interaction(native_id="https://s.example/1", kind="post", title="ok")


class DuplicatingSink(crmsync.Sink):
    """Appends instead of upserting: redelivery duplicates."""

    name = "appender"
    config_schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def write(self, deliveries):
        with open(self.resolve_path(self.config["path"]), "a") as fh:
            for d in deliveries:
                fh.write(json.dumps({"interaction_id": d.interaction.interaction_id, "title": d.interaction.title}) + "\n")
        return [d.receipt() for d in deliveries]


def _read_appended(opts, tmp: Path):
    path = tmp / opts["path"]
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def test_kit_fails_nondeterministic_ids(tmp_path):
    kit = get_source_test_class(UnstableIdSource, {})()
    with pytest.raises(AssertionError, match="same ids"):
        kit.test_ids_are_deterministic(tmp_path)
    with pytest.raises(AssertionError, match="re-run found 1 new"):
        kit.test_incremental_rerun_yields_nothing_new(tmp_path)


def test_kit_fails_silent_drops(tmp_path):
    kit = get_source_test_class(NoQuarantineSource, {}, bad_config={"bad": True})()
    with pytest.raises(AssertionError, match="quarantined"):
        kit.test_bad_input_goes_to_quarantine(tmp_path)


def test_kit_fails_a_non_idempotent_sink(tmp_path):
    kit = get_sink_test_class(DuplicatingSink, {"path": "out.jsonl"}, read_back=_read_appended)()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kit.test_delivers_everything_once(tmp_path / "a")  # a plain first delivery looks fine
    with pytest.raises(AssertionError, match="must not duplicate"):
        kit.test_redelivery_is_idempotent(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(AssertionError, match="exactly once"):
        kit.test_a_kill_between_write_and_ledger_sends_nothing_twice(tmp_path / "c")


def test_kit_checks_a_sinks_delete(tmp_path):
    class ForgetfulDeleteSink(DuplicatingSink):
        name = "forgetful"

        def delete(self, deletions):
            return [d.interaction_id for d in deletions]  # says so, deletes nothing

    kit = get_sink_test_class(ForgetfulDeleteSink, {"path": "out.jsonl"}, read_back=_read_appended)()
    with pytest.raises(AssertionError, match="must be gone"):
        kit.test_delete_removes_what_it_wrote(tmp_path)


class OverwritingSink(crmsync.Sink):
    """Claims to be parallel, but every instance writes the same file from scratch."""

    name = "overwriter"
    parallel = True
    config_schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def open(self):
        self._rows = []

    def write(self, deliveries):
        self._rows += [{"interaction_id": d.interaction.interaction_id, "title": d.interaction.title} for d in deliveries]
        self._done = [d.receipt() for d in deliveries]

    def flush(self):
        with open(self.resolve_path(self.config["path"]), "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in self._rows)
        return getattr(self, "_done", [])


def test_kit_fails_a_parallel_sink_whose_parts_collide(tmp_path):
    kit = get_sink_test_class(OverwritingSink, {"path": "out.jsonl"}, read_back=_read_appended)()
    with pytest.raises(AssertionError, match="overwrote each other"):
        kit.test_parallel_parts_do_not_collide(tmp_path)


class WrongVersionSink(crmsync.Sink):
    """Upserts, but every receipt says version 1 (the sink ignores Delivery.version)."""

    name = "wrong_version"
    config_schema = DuplicatingSink.config_schema

    def write(self, deliveries):
        rows = {r["interaction_id"]: r for r in _read_appended(self.config, self.context.config_dir)}
        for d in deliveries:
            rows[d.interaction.interaction_id] = {"interaction_id": d.interaction.interaction_id, "title": d.interaction.title}
        path = self.resolve_path(self.config["path"])
        path.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
        return [crmsync.Receipt(d.interaction.interaction_id, 1) for d in deliveries]


def test_kit_fails_a_sink_whose_receipts_carry_the_wrong_version(tmp_path):
    kit = get_sink_test_class(WrongVersionSink, {"path": "out.jsonl"}, read_back=_read_appended)()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kit.test_delivers_everything_once(tmp_path / "a")  # version 1 everywhere: looks fine
    with pytest.raises(AssertionError, match="receipt for version 1, the sink was handed version 2"):
        kit.test_edit_is_an_update(tmp_path / "b")


def test_the_runner_does_not_record_receipts_that_match_nothing_it_handed_out(tmp_path):
    from crmsync.testing import SampleSource, kit_config, kit_host, kit_run

    host = kit_host(sources=[SampleSource], sinks=[WrongVersionSink])
    cfg = kit_config(tmp_path, host, sources={"s": (SampleSource.name, {"variant": 0})}, sinks={"w": ("wrong_version", {"path": "out.jsonl"})})
    assert kit_run(cfg).sinks[0].status == "ok"
    cfg1 = kit_config(tmp_path, host, sources={"s": (SampleSource.name, {"variant": 1})}, sinks={"w": ("wrong_version", {"path": "out.jsonl"})})
    edit = kit_run(cfg1, full_refresh=True)
    sink = edit.sinks[0]
    assert sink.status == "partial" and edit.exit_code == 1
    assert "receipt for version 1, the sink was handed version 2" in sink.errors[0] and sink.delivered == 0


class BookmarkIgnoringSource(crmsync.Source):
    """Yields a bookmark, then reads everything again whatever it is handed."""

    name = "forgetful"
    channel = "feed"

    def read(self, state):
        for n in range(3):
            yield self.interaction(native_id=f"https://f.example/{n}", kind="post", title=f"t{n}")
        yield crmsync.Checkpoint({"seen": 3})


class NoCheckpointSource(crmsync.Source):
    """Never says how far it got."""

    name = "no_bookmark"
    channel = "feed"

    def read(self, state):
        yield self.interaction(native_id="https://n.example/1", kind="post", title="t")


def test_kit_fails_a_source_that_ignores_its_bookmark_or_never_sets_one(tmp_path):
    # the store de-duplicates, so "0 new on a re-run" passes both; what they yield does not
    get_source_test_class(BookmarkIgnoringSource, {})().test_incremental_rerun_yields_nothing_new(tmp_path / "a")
    with pytest.raises(AssertionError, match="yielded 3 interaction\\(s\\) it had yielded before"):
        get_source_test_class(BookmarkIgnoringSource, {})().test_rerun_from_the_bookmark_yields_nothing_old(tmp_path)
    with pytest.raises(AssertionError, match="never yields a Checkpoint"):
        get_source_test_class(NoCheckpointSource, {})().test_rerun_from_the_bookmark_yields_nothing_old(tmp_path)


class SwallowingSink(crmsync.Sink):
    """Catches its transport errors and confirms the batch anyway."""

    name = "swallower"
    config_schema = {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}

    def write(self, deliveries):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(self.config["url"], data=b"{}", timeout=2)
        except (urllib.error.URLError, OSError):
            pass  # the bug: nothing was written, yet...
        return [d.receipt() for d in deliveries]


class HonestSink(SwallowingSink):
    name = "honest"

    def write(self, deliveries):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(self.config["url"], data=b"{}", timeout=2)
        except (urllib.error.URLError, OSError) as exc:
            raise crmsync.RetriableError(f"target unreachable: {exc}") from exc
        return [d.receipt() for d in deliveries]


def test_kit_fails_a_sink_that_swallows_transport_errors(tmp_path):
    from .crm_e2e import closed_port_url

    dead = {"url": closed_port_url() + "/hook"}
    with pytest.raises(AssertionError, match="swallow transport errors"):
        get_sink_test_class(SwallowingSink, dead, read_back=lambda o, t: [], unreachable_config=dead)().test_an_unreachable_target_fails_and_confirms_nothing(tmp_path / "a")
    get_sink_test_class(HonestSink, dead, read_back=lambda o, t: [], unreachable_config=dead)().test_an_unreachable_target_fails_and_confirms_nothing(tmp_path / "b")


class NativeParentSource(crmsync.Source):
    """Puts the parent's guid in in_reply_to instead of the parent's interaction id."""

    name = "native_parent"
    channel = "feed"

    def read(self, state):
        yield self.interaction(native_id="https://p.example/1", kind="post", title="parent")
        yield self.interaction(native_id="https://p.example/1#c1", kind="comment", title="reply", in_reply_to="https://p.example/1")
        yield crmsync.Checkpoint({"done": True})


def test_kit_fails_an_in_reply_to_that_holds_a_native_id(tmp_path):
    # the schema itself refuses it now, saying what to write instead; the kit's check stays behind it
    with pytest.raises((AssertionError, ValueError), match="in_reply_to must"):
        get_source_test_class(NativeParentSource, {})().test_emits_valid_records(tmp_path)


class AheadOfItselfSource(crmsync.Source):
    """Bookmarks the whole input after its first record: a kill then loses the rest."""

    name = "ahead"
    channel = "feed"

    def read(self, state):
        start = (state or {}).get("done", 0)
        for n in range(start, 4):
            yield self.interaction(native_id=f"https://a.example/{n}", kind="post", title=f"t{n}")
            yield crmsync.Checkpoint({"done": 4})  # wrong: should be n + 1


class ShiftingIdSource(crmsync.Source):
    """Numbers its records by position in this read: resumed, the ids shift."""

    name = "shifting"
    channel = "feed"

    def read(self, state):
        start = (state or {}).get("done", 0)
        for pos, n in enumerate(range(start, 4)):
            yield self.interaction(native_id=f"https://s.example/item-{pos}", kind="post", title=f"t{n}")
            yield crmsync.Checkpoint({"done": n + 1})


def test_kit_fails_a_source_that_a_kill_would_make_lose_or_double(tmp_path):
    with pytest.raises(AssertionError, match="never yielded 3 record\\(s\\).*bookmark runs ahead"):
        get_source_test_class(AheadOfItselfSource, {})().test_a_killed_read_resumes_from_its_bookmark_without_duplicates(tmp_path / "a")
    with pytest.raises(AssertionError, match="ids are not stable|never yielded"):
        get_source_test_class(ShiftingIdSource, {})().test_a_killed_read_resumes_from_its_bookmark_without_duplicates(tmp_path / "b")


def test_kit_says_a_config_function_must_be_deterministic(tmp_path):
    import itertools

    from crmsync_rss.source import RssSource

    counter = itertools.count()

    def drifting(tmp):
        (tmp / "f.xml").write_text('<rss version="2.0"><channel><item><guid>https://d.example/1</guid></item></channel></rss>')
        return {"feeds": ["f.xml"], "timeout": 10 + next(counter)}

    with pytest.raises(AssertionError, match="config\\(tmp\\) must be deterministic"):
        get_source_test_class(RssSource, drifting)().test_ids_are_deterministic(tmp_path)
