"""The retry policy: tenacity, for :class:`~crmsync.RetriableError` only.

Exponential backoff with full jitter, bounded in attempts and wait, and
honouring ``retry_after`` (HTTP ``Retry-After``) when the error carries one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from ..contract.errors import RetriableError

T = TypeVar("T")
log = logging.getLogger("crmsync.retry")


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait what the server asked for, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self.maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(float(after), self.maximum)
        return self.backoff(retry_state)


def retrying(*, attempts: int = 5, initial: float = 0.5, max_wait: float = 60.0, name: str = "") -> tenacity.Retrying:
    """A :class:`tenacity.Retrying` that retries only :class:`RetriableError`.

    Use as ``for attempt in retrying(): with attempt: ...`` or
    ``retrying().__call__(fn, *args)``. After the last attempt the last error is
    re-raised as is.
    """

    def _log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%sattempt %d failed (%s); retrying in %.1fs", f"{name}: " if name else "", state.attempt_number, exc, state.next_action.sleep if state.next_action else 0)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetriableError),
        wait=_WaitRetryAfter(initial, max_wait),
        stop=tenacity.stop_after_attempt(attempts),
        before_sleep=_log,
        reraise=True,
    )


def call_with_retries(fn: Callable[..., T], *args: Any, attempts: int = 5, initial: float = 0.5, max_wait: float = 60.0, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)``, retrying :class:`RetriableError` per :func:`retrying`."""
    return retrying(attempts=attempts, initial=initial, max_wait=max_wait)(fn, *args, **kwargs)


__all__ = ["call_with_retries", "retrying"]
