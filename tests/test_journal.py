"""crmsync.CreateJournal: which creates a sink must search for before sending again."""

from __future__ import annotations

from pathlib import Path

import crmsync


class _Sink:
    instance = "crm"

    def __init__(self, state_dir):
        self.context = crmsync.Context(state_dir=state_dir)


def test_ids_are_forgotten_only_once_the_next_write_shows_their_receipts_were_recorded(tmp_path: Path):
    j = crmsync.CreateJournal.for_sink(_Sink(tmp_path))
    j.next_write()
    j.sending(["a", "b"])
    assert j.unknown(["a", "b", "c"]) == ["a", "b"]
    # the write raised (a timeout): the runner retries it, the outcome of a and b is unknown
    j.next_write()
    assert j.unknown(["a", "b"]) == ["a", "b"]
    j.returned()
    # a crash here (before the ledger): a new run reads the journal back
    again = crmsync.CreateJournal.for_sink(_Sink(tmp_path))
    assert again.unknown(["a", "b", "c"]) == ["a", "b"]
    j.next_write()  # the runner came back: the receipts are in the ledger
    assert j.unknown(["a", "b"]) == [] and not (tmp_path / "crm.creates.json").exists()


def test_without_a_state_directory_or_with_a_torn_file_every_create_is_unknown(tmp_path: Path):
    assert crmsync.CreateJournal.for_sink(_Sink(None)).unknown(["a"]) == ["a"]
    (tmp_path / "crm.creates.json").write_text('["a", "b')
    torn = crmsync.CreateJournal.for_sink(_Sink(tmp_path))
    assert torn.unknown(["x", "y"]) == ["x", "y"]


def test_ids_left_by_a_crash_stay_known_until_their_batch_comes_again(tmp_path: Path):
    j = crmsync.CreateJournal.for_sink(_Sink(tmp_path))
    j.next_write()
    j.sending(["a1", "a2", "z9"])  # a batch sent; then the process dies before the ledger
    run2 = crmsync.CreateJournal.for_sink(_Sink(tmp_path))
    run2.next_write()
    assert run2.unknown(["b1", "b2"]) == []  # the first page of the new run holds other ids
    run2.sending(["b1", "b2"])
    run2.returned()
    run2.next_write()  # that page's receipts are recorded: the crash's ids are still known
    assert run2.unknown(["a1", "z9", "c1"]) == ["a1", "z9"]
    run3 = crmsync.CreateJournal.for_sink(_Sink(tmp_path))  # and they survive another crash
    assert sorted(run3.unknown(["a1", "a2", "z9"])) == ["a1", "a2", "z9"]
