"""Forked worker processes: start them, supervise them, and die with the run.

A worker runs ``job(channel)`` in a forked child. It inherits what the run's
process loaded (plugins, models, the contact index), ignores Ctrl-C (the run
handles it), is SIGKILLed when the run's process dies (Linux
``PR_SET_PDEATHSIG``) and sends its log records and messages back through
its :class:`Channel`. The job must give the store its own connections
(``store.after_fork()``) before using it. :func:`supervise` turns messages
into callbacks and kills every worker if the run's process fails; a worker's
writes are atomic batches, so a killed worker leaves committed batches only.
"""

from __future__ import annotations

import functools
import gc
import logging
import logging.handlers
import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..host.logs import context_fields

#: a job run in a worker; what it returns is sent to the run's process as ("done", result)
Job = Callable[["Channel"], Any]


class Channel(logging.handlers.QueueHandler):
    """A worker's log records and messages, sent to the run's process."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.pipe = pipe
        self.send_lock = threading.Lock()

    def enqueue(self, record: logging.LogRecord) -> None:
        record.crmsync = context_fields()  # the worker's run, source or sink, for JSON logs
        self.send(("log", record))

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.pipe.send(message)


def prepare_fork() -> Any:
    """Before forking: the fork context; what exists now (modules, models, the
    contact index) is frozen out of the collector's reach, so its pages stay
    shared with the workers instead of copied."""
    import multiprocessing

    _prctl()
    gc.freeze()
    return multiprocessing.get_context("fork")


def spawn(ctx: Any, running: dict[Any, tuple[Any, Any, Any]], key: Any, job: Job, name: str) -> None:
    """Fork a worker running ``job`` and add it to ``running`` under ``key``."""
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker_main, args=(job, os.getpid(), send), name=name, daemon=True)
    proc.start()
    send.close()
    running[proc.sentinel] = (proc, recv, key)


def _worker_main(job: Job, run_pid: int, pipe: Any) -> None:
    channel = _become_worker(run_pid, pipe)
    result: Any = None
    try:
        result = job(channel)
    finally:
        channel.send(("done", result))
        pipe.close()


def _become_worker(run_pid: int, pipe: Any) -> Channel:
    """In a forked worker: die with the run, ignore Ctrl-C, log through the channel."""
    _die_with_parent()
    if os.getppid() != run_pid:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["CRMSYNC_RUN_PID"] = str(run_pid)
    channel = Channel(pipe)
    root = logging.getLogger("crmsync")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(channel)
    return channel


def how_it_ended(proc: Any) -> str:
    return f"killed by signal {-proc.exitcode}" if proc.exitcode and proc.exitcode < 0 else f"exit code {proc.exitcode}"


def supervise(
    running: dict[Any, tuple[Any, Any, Any]],
    on_message: Callable[[Any, tuple[Any, ...]], None],
    on_exit: Callable[[Any, Any, Any], None],
    refill: Callable[[], None] | None = None,
) -> None:
    """Supervise forked workers (``running``: sentinel -> (process, pipe, key)) until
    all have ended. Their log records go through this process's handlers; other
    messages to ``on_message(key, message)``; ``on_exit(key, process, result)``
    follows each end, ``result`` being the job's return value wrapped in a 1-tuple,
    or None if the worker died first. ``refill()`` may start more. On an error
    here (or Ctrl-C) every worker is killed."""
    from multiprocessing.connection import wait as wait_any

    try:
        if refill is not None:
            refill()
        while running:
            ready = set(wait_any([*running, *(r for _p, r, _k in running.values())]))
            for sentinel, (proc, recv, key) in list(running.items()):
                if sentinel not in ready and recv not in ready:
                    continue
                result: tuple[Any] | None = None
                eof = False
                try:
                    while recv.poll():
                        msg = recv.recv()
                        if msg[0] == "log":
                            logging.getLogger(msg[1].name).handle(msg[1])
                        elif msg[0] == "done":
                            result = (msg[1],)
                        else:
                            on_message(key, msg)
                except (EOFError, OSError):
                    eof = True
                if result is None and not eof and proc.exitcode is None:
                    continue
                proc.join()
                recv.close()
                del running[sentinel]
                on_exit(key, proc, result)
            if refill is not None:
                refill()
    except BaseException:
        for proc, _recv, _key in running.values():
            proc.kill()
            proc.join()
        raise


def run_all(ctx: Any, jobs: Iterable[tuple[Any, Job, str]], at_once: int, on_message: Callable[[Any, tuple[Any, ...]], None], on_exit: Callable[[Any, Any, Any], None], on_start: Callable[[Any], None] | None = None) -> None:
    """Run ``jobs`` (key, job, process name), ``at_once`` at a time, under :func:`supervise`."""
    todo = list(jobs)
    running: dict[Any, tuple[Any, Any, Any]] = {}

    def refill() -> None:
        while todo and len(running) < at_once:
            key, job, name = todo.pop(0)
            spawn(ctx, running, key, job, name)
            if on_start is not None:
                on_start(key)

    supervise(running, on_message, on_exit, refill)


@functools.lru_cache(maxsize=1)
def _prctl() -> Any:
    """libc's prctl, looked up once in the run's process (each worker inherits it)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers are only used where fork is
        return None


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that forked it dies."""
    prctl = _prctl()
    if prctl is not None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
