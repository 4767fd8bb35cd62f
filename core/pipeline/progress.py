"""Progress bars (tqdm) for ``crmsync run --progress``. In a worker process a
bar's steps go to the run's process, which draws them."""

from __future__ import annotations

import time
from typing import Any, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


def set_total(progress: Any, total: int) -> None:
    """Give a bar the number of records a source expects (a tqdm bar, or a worker's)."""
    if isinstance(progress, RemoteBar):
        progress.channel.send(("total", total))
    elif hasattr(progress, "total") and hasattr(progress, "refresh"):
        progress.total = total
        progress.refresh()


class NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class RemoteBar:
    """A worker's progress, sent to the run's process in steps (a message every 0.2 s)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.pending = 0
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.close()
            self.last = now

    def close(self) -> None:
        if self.pending:
            self.channel.send(("progress", self.pending))
            self.pending = 0


def bar(desc: str, enabled: bool, position: int, total: int | None = None, channel: Any = None) -> Bar:
    """A bar here; in a worker (``channel``), one whose steps go to the run's process."""
    if not enabled:
        return NoBar()
    if channel is not None:
        return RemoteBar(channel)
    from tqdm import tqdm

    return tqdm(desc=desc, total=total, unit="rec", position=position, leave=True, dynamic_ncols=True)
