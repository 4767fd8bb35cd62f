"""Each stage of the data path driven through its own interface: no runner, and
no store or worker processes where the stage does not need them
(docs/architecture.md). The end-to-end behaviour is in test_runner.py and the
crash tests."""

from __future__ import annotations

import os
from typing import Any

import pytest

import crmsync
from crmsync import Checkpoint, Identity, Receipt, Rejected, RetriableError
from crmsync.pipeline import workers
from crmsync.pipeline.commit import classify, commit
from crmsync.pipeline.deliver import SinkSetup, deliver
from crmsync.pipeline.enrich import Enrichment
from crmsync.pipeline.progress import NoBar
from crmsync.pipeline.read import Batch, ReadPolicy, read_batches, read_source
from crmsync.pipeline.report import RunReport, SinkReport, SourceReport
from crmsync.pipeline.resolve import Resolution, Settings
from crmsync.store import Store
from crmsync.testing import sample_interactions


def _recs(n: int, source: str = "s", **fields: Any) -> list[crmsync.Interaction]:
    return [crmsync.Interaction.create(source=source, channel="feed", native_id=f"n{i}", kind="post", title=f"t{i}", **fields) for i in range(n)]


# read ---------------------------------------------------------------------
def test_read_cuts_the_stream_into_batches_and_a_checkpoint_closes_its_batch():
    recs = _recs(5)
    stream = [recs[0], recs[1], Checkpoint({"at": 2}), recs[2], Rejected("r1", "bad", b"x"), recs[3], recs[4], Checkpoint({"at": 5})]
    got: list[Batch] = []
    rep = SourceReport("s", "p")
    read_batches("s", stream, 3, rep, NoBar(), got.append)
    # a batch is full at 3 items (records and rejected inputs); the last checkpoint
    # comes after it, alone
    assert [[r.native_id for r in b.records] for b in got] == [["n0", "n1", "n2"], ["n3", "n4"], []]
    assert [b.checkpoint for b in got] == [{"at": 2}, None, {"at": 5}]
    assert [len(b.rejected) for b in got] == [0, 1, 0]
    assert rep.read == 5


def test_read_hands_on_what_came_before_a_failure_then_raises():
    def stream():
        yield from _recs(2)
        yield Checkpoint({"at": 2})
        raise OSError("connection reset")

    got: list[Batch] = []
    with pytest.raises(OSError, match="connection reset"):
        read_batches("s", stream(), 100, SourceReport("s", "p"), NoBar(), got.append)
    assert len(got) == 1 and len(got[0].records) == 2 and got[0].checkpoint == {"at": 2}


@pytest.mark.parametrize("item, message", [(object(), "yielded object"), (_recs(1, source="other")[0], "interaction of source 'other'")])
def test_read_refuses_what_a_source_must_not_yield(item, message):
    with pytest.raises(crmsync.FatalError, match=message):
        read_batches("s", [item], 10, SourceReport("s", "p"), NoBar(), lambda b: None)


class _Bookmarks:
    """The two calls read_source makes on the store's bookmarks, in memory."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        return self.state.get(name)

    def reset(self, name: str) -> None:
        self.state.pop(name, None)


class _Flaky(crmsync.Source):
    name = "flaky"
    fails = 1

    def read(self, state):
        start = (state or {}).get("at", 0)
        for i in range(start, 4):
            yield self.interaction(native_id=f"n{i}", kind="post", title=f"t{i}")
            yield Checkpoint({"at": i + 1})
            if i == 1 and type(self).fails:
                type(self).fails -= 1
                raise RetriableError("feed timed out")


def test_read_source_restarts_a_flaky_source_from_its_last_bookmark():
    bookmarks = _Bookmarks()
    seen: list[str] = []

    def commit_(batch: Batch) -> None:
        seen.extend(r.native_id for r in batch.records)
        if batch.checkpoint is not None:
            bookmarks.state["s"] = batch.checkpoint  # what the commit stage does, in one transaction

    rep = SourceReport("s", "flaky")
    _Flaky.fails = 1
    read_source(lambda: _Flaky("s", {}), rep, bookmarks, ReadPolicy(batch_size=1, attempts=3, max_wait=0.01), NoBar(), commit_)
    assert rep.status == "ok" and rep.restarts == 1
    assert seen == ["n0", "n1", "n2", "n3"], "resumed after n1, nothing twice"


def test_read_source_reports_a_failing_source_and_never_raises():
    class Broken(crmsync.Source):
        name = "broken"

        def read(self, state):
            raise crmsync.ConfigError("feed URL missing")
            yield

    rep = SourceReport("s", "broken")
    read_source(lambda: Broken("s", {}), rep, _Bookmarks(), ReadPolicy(10, 1, 0.01), NoBar(), lambda b: None)
    assert rep.status == "failed" and rep.errors == ["ConfigError: feed URL missing"]


# enrich -------------------------------------------------------------------
class _Upper(crmsync.Enricher):
    name = "upper"

    def enrich_batch(self, interactions):
        return [r.model_copy(update={"title": r.title.upper()}) for r in interactions]


class _Drops(crmsync.Enricher):
    name = "drops"

    def enrich_batch(self, interactions):
        return interactions[:-1]


def test_enrich_runs_the_chain_and_a_bad_enricher_leaves_records_as_they_were():
    made = []
    errors: list[str] = []

    def make():
        made.append(1)
        return [_Upper("up", {}), _Drops("drop", {})]

    enrich = Enrichment(make, "s", errors)
    assert enrich([]) == [] and made == [], "no records: the chain (and its models) is not made"
    out = enrich(_recs(2))
    assert [r.title for r in out] == ["T0", "T1"] and len(made) == 1
    assert errors == ["enricher drop failed, records stored without it: FatalError: enricher 'drop' returned 1 records for 2"]


# resolve ------------------------------------------------------------------
class _People:
    """The calls Resolution makes on the store's identities, in memory."""

    def __init__(self, contacts: list[Identity]) -> None:
        self._contacts = contacts
        self.queued: list[dict[str, Any]] = []
        self.clustered: dict[str, list[str]] = {}

    def count_contacts(self, changed_since=None):
        return len(self._contacts)

    def contacts(self, changed_since=None):
        return iter(self._contacts)

    def decisions(self):
        return {}

    def cluster(self, keys_by_author, write=True):
        self.clustered.update(keys_by_author)
        return {a: a for a in keys_by_author}

    def add_candidates(self, items):
        self.queued.extend(items)
        return len(items)

    # the contact index, as the store keeps it
    def sync_contact_index(self, entries, page=2000):
        self.rows = {(kind, key, c.identity_id) for c in self._contacts for kind, key in entries(c)}
        return len(self._contacts)

    def count_stale_contacts(self):
        return 0

    def contact_ids_by(self, kind, keys):
        out: dict[str, set[str]] = {}
        for k, key, cid in self.rows:
            if k == kind and key in keys:
                out.setdefault(key, set()).add(cid)
        return out

    def contact_names_by(self, kind, keys):
        names = {c.identity_id: c.name or "" for c in self._contacts}
        out: dict[str, dict[str, str]] = {}
        for k, v, cid in sorted(self.rows):
            if k == kind and v in keys:
                out.setdefault(v, {})[cid] = names[cid]
        return out

    def count_contact_keys(self, kind):
        return sum(1 for k, _, _ in self.rows if k == kind)

    def iter_contact_keys(self, kind, page=2000):
        return iter(sorted(key for k, key, _ in self.rows if k == kind))

    def records_by_id(self, ids):
        return {c.identity_id: c.model_dump_json() for c in self._contacts if c.identity_id in ids}


def test_resolve_links_a_known_author_and_clusters_a_stranger():
    contact = Identity(name="Ann Example", emails=["ann@example.org"], crm_ids={"crm": "C1"})
    people = _People([contact])
    stage = Resolution(people, None, Settings(), lambda: [])  # type: ignore[arg-type]
    counts: dict[str, int] = {}
    stage.prepare(counts, build_now=False)
    assert stage.resolver is not None and counts["contacts"] == 1, "deferred: counted, not built"
    ann = _recs(1, author=Identity(name="Ann", emails=["Ann@Example.org"]))[0]
    bob = crmsync.Interaction.create(source="s", channel="feed", native_id="b", kind="post", author=Identity(name="Bob", emails=["bob@else.example"]))
    rep = SourceReport("s", "p")
    out = stage.resolve([ann, bob], rep, counts)
    assert out[0].author.crm_ids == {"crm": "C1"} and out[1].author.crm_ids == {}
    assert rep.linked == 1 and counts["linked"] == 1
    assert list(people.clustered) == [bob.author.identity_id]


def test_resolve_does_nothing_until_prepared():
    stage = Resolution(_People([]), None, Settings(), lambda: [])  # type: ignore[arg-type]
    recs = _recs(2, author=Identity(name="Ann", emails=["ann@example.org"]))
    assert stage.resolve(recs, SourceReport("s", "p"), {}) is recs


# commit (the stage that writes: it needs the store) ---------------------------
def test_commit_writes_a_batch_with_its_bookmark_and_a_dry_run_only_classifies(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        rep = SourceReport("s", "p")
        commit(store.interactions, Batch(records=_recs(3), rejected=[Rejected("r", "bad", b"x")], checkpoint={"at": 3}), rep, "run-1")
        assert (rep.new, rep.quarantined) == (3, 1) and store.bookmarks.get("s") == {"at": 3}
        dry = SourceReport("s", "p")
        changed: dict[str, str] = {}
        edited = _recs(4)
        edited[0] = edited[0].model_copy(update={"title": "edited"})
        edited[0].content_hash = edited[0].compute_content_hash()
        classify(store.interactions, Batch(records=edited), dry, changed)
        assert (dry.new, dry.updated, dry.unchanged) == (1, 1, 2) and sorted(changed.values()) == ["edit", "new"]
        assert sum(store.interactions.count_by_source().values()) == 3, "a dry run writes nothing"
    finally:
        store.dispose()


# deliver ------------------------------------------------------------------
class _Memory(crmsync.Sink):
    name = "memory"
    held: dict[str, int] = {}
    lie = False

    def write(self, deliveries):
        for d in deliveries:
            type(self).held[d.interaction.interaction_id] = d.version
        return [Receipt(d.interaction.interaction_id, 1 if self.lie else d.version) for d in deliveries]


def _setup(cls: type[crmsync.Sink]) -> SinkSetup:
    return SinkSetup("mem", cls.name, cls, lambda: {}, None, attempts=2, max_wait=0.01)


def test_deliver_sends_the_backlog_once_and_the_ledger_remembers(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.interactions.write_batch("s", sample_interactions())
        _Memory.held, _Memory.lie = {}, False
        rep = SinkReport("mem", "memory")
        deliver(_setup(_Memory), store, crmsync.Context(run_id="r1"), rep, NoBar())
        assert rep.status == "ok" and rep.created == 12 and len(_Memory.held) == 12
        again = SinkReport("mem", "memory")
        deliver(_setup(_Memory), store, crmsync.Context(run_id="r2"), again, NoBar())
        assert again.delivered == 0 and store.ledger.backlog("mem") == 0
    finally:
        store.dispose()


def test_deliver_keeps_out_of_the_ledger_receipts_that_do_not_match_what_was_handed(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.interactions.write_batch("s", sample_interactions())
        store.interactions.write_batch("s", sample_interactions(variant=1))  # one record at version 2
        _Memory.held, _Memory.lie = {}, True
        rep = SinkReport("mem", "memory")
        deliver(_setup(_Memory), store, crmsync.Context(run_id="r1"), rep, NoBar())
        assert rep.status == "partial" and rep.delivered == 11
        assert store.ledger.backlog("mem") == 1, "the version-2 record stays in the backlog"
    finally:
        store.dispose()


# workers and reports ---------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="worker processes need fork")
def test_workers_report_results_messages_and_deaths():
    ctx = workers.prepare_fork()
    messages: list[tuple[str, Any]] = []
    ends: dict[str, Any] = {}

    def fine(channel):
        channel.send(("committed", 7))
        return "report"

    def dies(channel):
        os._exit(9)

    workers.run_all(ctx, [("a", fine, "t-a"), ("b", dies, "t-b")], 2, lambda k, m: messages.append((k, m)), lambda k, proc, result: ends.update({k: result}))
    assert messages == [("a", ("committed", 7))]
    assert ends == {"a": ("report",), "b": None}


def test_a_run_report_concludes_from_its_parts():
    report = RunReport(run_id="r", started_at="now", sources=[SourceReport("s", "p", status="ok", quarantined=1)], sinks=[SinkReport("k", "p", status="ok")])
    report.conclude()
    assert (report.status, report.exit_code) == ("ok_with_quarantine", 1)
    report.sinks[0].status = "locked"
    report.sources[0].quarantined = 0
    report.conclude()
    assert (report.status, report.exit_code) == ("ok", 3)
