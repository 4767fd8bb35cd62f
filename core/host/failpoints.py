"""Failure injection for crash tests (like TiKV's fail-rs).

``CRMSYNC_FAILPOINTS="sink.after_write:2,source.after_commit"`` makes the
process kill itself with SIGKILL on the 2nd time it passes
``sink.after_write`` (or the 1st time it passes ``source.after_commit``).
In a source worker process the whole run is killed (``CRMSYNC_RUN_PID``), as
a crash of the machine or the run would.
Unset, a failpoint costs one dict lookup. Used by the exactly-once tests.
"""

from __future__ import annotations

import os
import signal
import threading

_points: dict[str, int] | None = None
_hits: dict[str, int] = {}
_lock = threading.Lock()


def _parse() -> dict[str, int]:
    spec = os.environ.get("CRMSYNC_FAILPOINTS", "")
    points = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, count = part.partition(":")
        points[name] = int(count or 1)
    return points


def failpoint(name: str) -> None:
    """Kill the process here if ``CRMSYNC_FAILPOINTS`` says so."""
    global _points  # noqa: PLW0603
    if _points is None:
        _points = _parse()
    if name not in _points:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= _points[name]:
            run_pid = int(os.environ.get("CRMSYNC_RUN_PID") or 0)
            if run_pid and run_pid != os.getpid():
                os.kill(run_pid, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
