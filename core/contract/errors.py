"""The crmsync error hierarchy.

Every error crmsync raises on purpose derives from :class:`CrmsyncError`. The
branches say what the runner does next, not what went wrong:

* :class:`ConfigError`: the configuration or the command line is wrong. Nothing
  runs; the CLI exits with code 2.
* :class:`FatalError`: this source or sink cannot go on. It is reported as
  failed; the other sources and sinks finish.
* :class:`RetriableError`: a transient failure (timeout, 5xx, 429, reset). The
  only kind of error crmsync retries, with backoff, honouring ``retry_after``.
* :class:`SkippableError`: one input record is bad. The record goes to the
  quarantine with the reason and the run continues.
"""

from __future__ import annotations

from typing import Any


class CrmsyncError(Exception):
    """Root of every error crmsync raises on purpose.

    ``plugin`` names the plugin or instance the error comes from and
    ``context`` carries whatever helps the user act (a file, a record, a key).
    """

    exit_code = 1

    def __init__(self, message: str, *, plugin: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = plugin
        self.context = context

    def __str__(self) -> str:
        prefix = f"{self.plugin}: " if self.plugin else ""
        return f"{prefix}{self.message}"


class ConfigError(CrmsyncError):
    """The configuration (file, option or environment) is invalid.

    Messages name the file, the key and the valid choices.
    """

    exit_code = 2


class PluginError(CrmsyncError):
    """A plugin failed to import, or violates a hook specification."""


class FatalError(CrmsyncError):
    """A source or sink cannot continue; the rest of the run goes on.

    A sink that fails after part of its writes became durable passes their
    ``receipts``: the runner records them in the ledger before it reports the
    failure, so the next run does not send them again.
    """

    def __init__(self, message: str, *, receipts: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.receipts = list(receipts or [])


class RetriableError(CrmsyncError):
    """A transient failure worth retrying.

    ``retry_after`` (seconds), when the remote side said how long to wait
    (HTTP ``Retry-After``), is honoured by the retry policy. A sink whose
    ``write`` failed after part of the batch became durable passes those
    ``receipts``: the runner records them, and retries ``write`` with the rest
    of the batch only.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, receipts: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.receipts = list(receipts or [])


class SkippableError(CrmsyncError):
    """One input record cannot be processed; quarantine it and go on.

    ``ref`` locates the record (file and row, folder and UID, URL) and ``raw``
    holds its bytes so that ``crmsync quarantine replay`` can try again.
    """

    def __init__(self, message: str, *, ref: str = "", raw: bytes | str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.ref = ref
        self.raw = raw


class LockedError(CrmsyncError):
    """Another run holds the store's lock."""

    exit_code = 3


__all__ = [
    "ConfigError",
    "CrmsyncError",
    "FatalError",
    "LockedError",
    "PluginError",
    "RetriableError",
    "SkippableError",
]
