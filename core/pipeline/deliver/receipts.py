"""Receipts checked against what the sink was given.

A sink's receipt says "this version of this interaction is durable". The
ledger must only record what is true: a receipt for an interaction the sink
was not handed, or for another version (a sink that always answers version
1), would make the ledger lie: an edited record would be sent again on every
run, or never. :class:`ReceiptCheck` remembers what one sink was handed since
its last flush and keeps only the receipts that match; the rest are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...contract.base import Delivery, Receipt
from ...contract.errors import RetriableError


class ReceiptCheck:
    """What a sink was handed (id -> version, operation) until its receipts come back."""

    def __init__(self) -> None:
        self._handed: dict[str, tuple[int, str]] = {}
        self.refused: list[str] = []

    def handed(self, batch: Sequence[Delivery]) -> None:
        """The runner passed ``batch`` to :meth:`Sink.write`."""
        for d in batch:
            self._handed[d.interaction.interaction_id] = (d.version, d.operation)

    def operation(self, interaction_id: str) -> str | None:
        """``create`` or ``update``: what the delivery handed for this id was (a receipt
        that comes with a flush says neither)."""
        handed = self._handed.get(interaction_id)
        return handed[1] if handed else None

    def keep(self, receipts: Iterable[Receipt]) -> list[Receipt]:
        """The receipts that match a handed delivery; the others are described in ``refused``."""
        out: list[Receipt] = []
        for r in receipts:
            handed = self._handed.get(r.interaction_id)
            version = handed[0] if handed else None
            if version == r.version:
                out.append(r)
            elif len(self.refused) < 1000:
                self.refused.append(
                    f"interaction {r.interaction_id} was not handed to the sink" if version is None
                    else f"interaction {r.interaction_id}: receipt for version {r.version}, the sink was handed version {version}"
                )
        return out

    def flushed(self) -> None:
        """Everything handed so far has had its chance to be confirmed."""
        self._handed.clear()

    def problem(self) -> str | None:
        """One line for the run report, or ``None`` when every receipt matched."""
        if not self.refused:
            return None
        return (f"the sink returned {len(self.refused)} receipt(s) that match nothing it was given (not recorded, so those "
                f"records are delivered again): {self.refused[0]}" + (f"; and {len(self.refused) - 1} more" if len(self.refused) > 1 else ""))


class PartialWrites:
    """``sink.write`` for the retry policy: when an attempt fails with a
    :class:`RetriableError` that carries receipts, those are recorded at once
    (``record``) and the next attempt writes only the rest of the batch."""

    def __init__(self, write: Callable[[Sequence[Delivery]], Any], batch: Sequence[Delivery], record: Callable[[list[Receipt]], None]) -> None:
        self.write, self.remaining, self.record = write, list(batch), record

    def __call__(self) -> Any:
        try:
            return self.write(self.remaining)
        except RetriableError as exc:
            if exc.receipts:
                done = {r.interaction_id for r in exc.receipts}
                self.record(list(exc.receipts))
                self.remaining = [d for d in self.remaining if d.interaction.interaction_id not in done]
            raise


__all__ = ["PartialWrites", "ReceiptCheck"]
