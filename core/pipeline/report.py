"""What a run tells its caller: a report per source and per sink, the run's
status and its exit code (``crmsync run --json`` prints :class:`RunReport`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..host.secrets import redact

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3
#: Ctrl-C (SIGINT): the run stopped at a batch or page boundary; the next run goes on
EXIT_INTERRUPTED = 130

#: the source report's counts a worker sends after each commit (kept if it dies)
COMMITTED_COUNTS = ("read", "new", "updated", "unchanged", "identities", "quarantined", "linked", "suppressed", "deleted")
#: the sink report's counts a worker sends after each ledger write
DELIVERED_COUNTS = ("created", "updated", "delivered", "rejected", "invalid", "deleted")


@dataclass
class SourceReport:
    """What one source did in a run."""

    name: str
    plugin: str
    status: str = "pending"  # ok, failed
    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    identities: int = 0
    quarantined: int = 0
    linked: int = 0
    #: records by people erased with ``crmsync forget`` or on ``[privacy] opt_out``: skipped
    suppressed: int = 0
    #: interactions the source took down (gone upstream): marked deleted, deleted by the sinks
    deleted: int = 0
    restarts: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SinkReport:
    """What one sink did in a run."""

    name: str
    plugin: str
    status: str = "pending"
    created: int = 0
    updated: int = 0
    delivered: int = 0
    #: records the target refused / the sink refused to send: quarantined, tried again next run
    rejected: int = 0
    invalid: int = 0
    #: records deleted from the target because their source took them down
    deleted: int = 0
    backlog: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, part: SinkReport) -> None:
        """Take in the counts, errors and notes of a part delivered elsewhere."""
        for key in DELIVERED_COUNTS:
            setattr(self, key, getattr(self, key) + getattr(part, key))
        self.errors.extend(e for e in part.errors if e not in self.errors)
        self.notes.extend(n for n in part.notes if n not in self.notes)


@dataclass
class RunReport:
    """The outcome of ``crmsync run`` (``--json`` prints it)."""

    run_id: str
    started_at: str
    dry_run: bool = False
    full_refresh: bool = False
    finished_at: str | None = None
    duration: float = 0.0
    status: str = "running"
    exit_code: int = 0
    sources: list[SourceReport] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)
    identity: dict[str, int] = field(default_factory=dict)
    #: Why the run did not start (``status`` "locked": another process holds the store).
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return _redact_tree(asdict(self))

    @property
    def totals(self) -> dict[str, int]:
        return {
            "read": sum(s.read for s in self.sources),
            "new": sum(s.new for s in self.sources),
            "updated": sum(s.updated for s in self.sources),
            "quarantined": sum(s.quarantined for s in self.sources),
            "delivered": sum(s.delivered for s in self.sinks),
        }

    def conclude(self) -> None:
        """Set ``status`` and ``exit_code`` from the sources' and sinks' reports."""
        failed = any(r.status in ("failed", "partial") for r in [*self.sources, *self.sinks])
        quarantined = any(r.quarantined for r in self.sources) or any(r.rejected or r.invalid for r in self.sinks)
        locked = any(r.status == "locked" for r in self.sinks)
        self.exit_code = EXIT_PARTIAL if (failed or quarantined) else (EXIT_LOCKED if locked else EXIT_OK)
        self.status = "failed" if failed else ("ok" if not quarantined else "ok_with_quarantine")


def add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def describe(exc: BaseException) -> str:
    """An error for a report or a log line, secrets masked."""
    return redact(f"{type(exc).__name__}: {exc}")


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    return value


__all__ = ["EXIT_CONFIG", "EXIT_LOCKED", "EXIT_OK", "EXIT_PARTIAL", "RunReport", "SinkReport", "SourceReport", "describe"]
