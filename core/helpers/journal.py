"""A sink's journal of creates whose outcome it may not know.

An API sink that *creates* records (rather than upserting by a key the target
enforces) must not create one twice when an attempt's answer is lost: a
timeout, a dropped connection, a crash between the write and the ledger.
Searching the target before every create is safe but costs a request (or a
scan) per batch. The journal makes the search targeted: ids are written down
(fsynced) before they are sent, and forgotten once the runner has recorded
their receipts, which it has by the time it calls the sink's next
:meth:`~crmsync.Sink.write` or :meth:`~crmsync.Sink.flush`. Whatever is still
in the journal when a run starts, or when a write is retried after an error,
has an unknown outcome: search for those before creating them again.

The file lives in the run's plugin state directory (``.crmsync/plugins``),
so it serves one machine: when several machines deliver one sink, or a
ledger may be reset by hand, search before every create instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class CreateJournal:
    """Ids whose create may have happened without a recorded receipt.

    In a sink: call :meth:`next_write` at the start of each ``write`` and in
    ``flush``, :meth:`sending` with the ids before the create request, and
    :meth:`returned` when ``write`` is about to return its receipts; ask
    :meth:`unknown` which ids to search for.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.durable = path is not None
        #: left by an earlier run (a crash before the ledger): searched when they come again
        self._inherited: set[str] = set()
        #: sent by this process's current write (or by an attempt of it that raised)
        self._pending: set[str] = set()
        if path is not None and path.exists():
            try:
                self._inherited = set(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                self.durable = False  # a torn file: nothing is known, so every create is searched
        self._returned = False

    @classmethod
    def for_sink(cls, sink: Any, name: str = "creates") -> CreateJournal:
        """The journal of a sink instance in its run's plugin state directory."""
        state_dir = getattr(sink.context, "state_dir", None)
        return cls(Path(state_dir) / f"{sink.instance}.{name}.json" if state_dir else None)

    def unknown(self, ids: Iterable[str]) -> list[str]:
        """Those of ``ids`` whose outcome is unknown (all of them when the journal is not durable).

        An id left by an earlier run counts as handled by the current write from
        here on (the sink finds it or sends it again, and returns its receipt).
        """
        ids = list(ids)
        if not self.durable:
            return ids
        hits = [i for i in ids if i in self._inherited or i in self._pending]
        for i in hits:
            if i in self._inherited:
                self._inherited.discard(i)
                self._pending.add(i)
        return hits

    def next_write(self) -> None:
        """The runner called again: if the last write returned, its receipts are recorded."""
        if self._returned and self._pending:
            self._pending.clear()
            self._save()
        self._returned = False

    def sending(self, ids: Iterable[str]) -> None:
        """Write ``ids`` down (durably) before their create request goes out."""
        self._pending.update(ids)
        self._save()

    def returned(self) -> None:
        """``write`` is returning: its receipts go to the ledger before the next call."""
        self._returned = True

    def _save(self) -> None:
        if self.path is None:
            return
        held = self._inherited | self._pending
        if not held:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(sorted(held), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


__all__ = ["CreateJournal"]
