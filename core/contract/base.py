"""Base classes for plugins: :class:`Source`, :class:`Sink` and :class:`Enricher`.

A plugin class sets class attributes (``name``, ``description``,
``config_schema``) and overrides one method: :meth:`Source.read`,
:meth:`Sink.write` or :meth:`Enricher.enrich`. The runner does the rest:
config validation, batching, the store, bookmarks, the delivery ledger,
retries and quarantine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from .errors import ConfigError, FatalError, RetriableError, SkippableError
from .schema import Identity, Interaction


@dataclass(frozen=True)
class Checkpoint:
    """A bookmark a source yields once everything before it is emitted.

    The runner stores ``state`` only after every record yielded before it is
    committed to the store, and hands it back to :meth:`Source.read` next run.
    ``state`` must be JSON-serializable and must not hold secrets.
    """

    state: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """An input record that could not be processed: it goes to the quarantine.

    ``ref`` locates it (``feeds/a.xml``, ``reviews.csv:17``, ``INBOX:UID 42``),
    ``reason`` says what is wrong, ``raw`` is the payload to replay later.
    """

    ref: str
    reason: str
    raw: bytes | None = None
    error_type: str = "SkippableError"


@dataclass(frozen=True)
class Takedown:
    """An interaction this source delivered before is gone upstream (a review removed from
    the platform's export). The store keeps it marked ``deleted`` (a new version) and the
    sinks that hold it delete it. Yield it only when the source is sure, and when the
    user asked for it (an ``on_delete = "propagate"`` option, say).

    .. versionadded:: 0.2
    """

    interaction_id: str
    reason: str = "removed upstream"


#: What :meth:`Source.read` may yield.
Record = Interaction | Identity | Checkpoint | Rejected | Takedown


@dataclass
class Context:
    """What the host gives a plugin instance.

    ``config_dir`` is the directory of the config file (relative paths in
    config are relative to it); ``run_started`` is the run's start in UTC;
    ``state_dir`` is a directory the plugin may keep files in. ``part`` is set
    when several instances of a :attr:`Sink.parallel` sink deliver one run side
    by side (0, 1, ...): put it in anything they must not share, such as file names.
    """

    config_dir: Path = field(default_factory=Path.cwd)
    state_dir: Path | None = None
    run_started: datetime = field(default_factory=lambda: datetime.now(UTC))
    run_id: str | None = None
    dry_run: bool = False
    part: int | None = None


class _Plugin:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: JSON Schema (draft 2020-12) of the instance's options. Mark secret
    #: strings with ``"secret": true``: they must be given as ``env:NAME`` or
    #: ``file:PATH`` references and arrive as :class:`crmsync.Secret`.
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}

    def __init__(self, instance: str, config: Mapping[str, Any], context: Context | None = None) -> None:
        self.instance = instance
        self.config = dict(config)
        self.context = context or Context()
        self.log = logging.getLogger(f"crmsync.{self._role}.{instance}")
        self.notes: list[str] = []
        self.errors: list[str] = []

    _role = "plugin"

    def error(self, message: str) -> None:
        """Report a failure that spared the rest of the work (one feed of many).

        It goes into the run report; the run exits 1.
        """
        self.errors.append(message)
        self.log.error("%s", message)

    def note(self, message: str) -> None:
        """Add a line to this instance's part of the run report (e.g. truncated fields)."""
        if message not in self.notes:
            self.notes.append(message)

    def preflight(self) -> list[str]:
        """Check the options against this machine without reading data or touching
        the network: input paths exist, options agree with each other. Raise
        :class:`~crmsync.ConfigError` naming the key. Returns lines to show.

        ``crmsync validate`` calls it (``--offline`` too) and ``crmsync run`` calls
        it before reading anything: a problem exits 2 instead of failing the run
        halfway. Network checks (logins) belong in ``check()``.

        .. versionadded:: 0.2
        """
        return []

    def state_key(self, path: Path) -> str:
        """How a bookmark names a local file: relative to the config file's directory
        when it lies below it, so moving the project keeps the bookmarks valid.

        .. versionadded:: 0.2
        """
        try:
            return path.resolve().relative_to(self.context.config_dir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from config, relative to the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.context.config_dir / p)


class Source(_Plugin):
    """Reads interactions (and identities) from somewhere.

    Override :meth:`read`. Set ``channel`` to the family your ids belong to.
    """

    _role = "source"
    #: Channel family of this source's interactions (``feed``, ``email``, ``review``).
    channel: ClassVar[str] = "other"

    #: How many records this read is expected to yield, when the source can tell
    #: (messages in a mailbox, rows of an export): set it with :meth:`expect`.
    expected: int | None = None

    def expect(self, records: int) -> None:
        """Say how many records are coming (in total so far): the progress bar shows a
        total. Call it again as more inputs are opened; it is a hint, never checked.

        .. versionadded:: 0.2
        """
        self.expected = records

    def read(self, state: dict[str, Any] | None) -> Iterator[Record]:
        """Yield records, :class:`Rejected` inputs and :class:`Checkpoint` bookmarks.

        ``state`` is the last committed checkpoint's state, or ``None`` on the
        first run and with ``--full-refresh``. Yield :class:`Rejected` for bad
        input instead of raising; raise :class:`crmsync.RetriableError` for
        transient failures and :class:`crmsync.FatalError` when the whole
        source cannot go on.
        """
        raise NotImplementedError

    def replay(self, ref: str, raw: bytes) -> Iterator[Record]:
        """Process one quarantined input again (``crmsync quarantine replay``).

        ``ref`` and ``raw`` are what the :class:`Rejected` carried. The default
        says the source cannot replay; file-based sources re-parse ``raw``.
        """
        msg = f"source plugin {self.name!r} cannot replay quarantined records"
        raise ConfigError(msg, plugin=self.instance)
        yield  # pragma: no cover

    # helpers -------------------------------------------------------------
    def interaction(self, *, native_id: str, kind: str, scope: str | None = None, **fields: Any) -> Interaction:
        """Build an :class:`Interaction` of this source with a derived id."""
        fields.setdefault("fetched", self.context.run_started)
        return Interaction.create(source=self.instance, channel=self.channel, native_id=native_id, scope=scope, kind=kind, **fields)

    def reject(self, ref: str, reason: str, raw: bytes | str | None = None, error_type: str = "SkippableError") -> Rejected:
        """A :class:`Rejected` record for the quarantine."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return Rejected(ref=ref, reason=reason, raw=raw, error_type=error_type)

    def guard(self, ref: str, raw: bytes | str | Path | None, records: Iterable[Record]) -> Iterator[Record]:
        """Yield ``records``, and if producing them fails, a :class:`Rejected` for
        ``ref`` (with ``raw``) in their place; then stop, so the caller goes on
        with the next record or file. ``raw`` may be the path of a file read a
        piece at a time: its bytes are read for the quarantine only if it fails.

        Wrap the work for one input record, and for one file, in it: whatever a
        parser raises on hostile input (``RecursionError`` from deep nesting,
        ``UnicodeError``, a library's own exceptions) quarantines that input
        instead of failing the source and every record after it. Transport and
        configuration failures (:class:`~crmsync.RetriableError`,
        :class:`~crmsync.FatalError`, :class:`~crmsync.ConfigError`) pass through:
        they are not about one input. ``MemoryError`` and ``KeyboardInterrupt``
        pass through too.

        .. versionadded:: 0.2
        """
        try:
            yield from records
        except (RetriableError, FatalError, ConfigError, MemoryError):
            raise
        except SkippableError as exc:
            yield self.reject(exc.ref or ref, exc.message, _payload(raw) if exc.raw is None else exc.raw)
        except Exception as exc:  # noqa: BLE001 - any failure of one input quarantines that input
            yield self.reject(ref, describe_failure(exc), _payload(raw), error_type=type(exc).__name__)


def _payload(raw: bytes | str | Path | None) -> bytes | str | None:
    """What :meth:`Source.guard` quarantines: a file's bytes, read now, for a path."""
    if not isinstance(raw, Path):
        return raw
    try:
        return raw.read_bytes()
    except OSError:
        return None


def describe_failure(exc: BaseException) -> str:
    """A quarantine reason for an exception a parser raised on one input."""
    text = str(exc)
    if len(text) > 300:
        text = text[:300] + "..."
    if isinstance(exc, RecursionError):
        return f"nested too deeply to read ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Receipt:
    """A sink's word that an interaction's version is durably written.

    ``external_id`` is the id the CRM gave the record, when it says.
    """

    interaction_id: str
    version: int
    external_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One interaction version a sink must write.

    ``operation`` is ``create`` when this sink never received the interaction,
    ``update`` when it holds an older version (then ``external_id`` is the id
    it reported for it).
    """

    interaction: Interaction
    version: int
    operation: Literal["create", "update"]
    external_id: str | None = None
    #: The author's identity as the store knows it (merged sightings, influence, flags).
    author_profile: Identity | None = None

    def receipt(self, external_id: str | None = None) -> Receipt:
        """A :class:`Receipt` for this delivery."""
        return Receipt(self.interaction.interaction_id, self.version, external_id or self.external_id)


@dataclass(frozen=True, slots=True)
class SinkRejection:
    """A delivery a sink could not write: no receipt, so it stays in the backlog.

    ``kind`` is ``rejected`` (the target refused it: ``detail`` keeps the
    request and the response, secrets masked) or ``invalid`` (refused by the
    sink before sending). The runner puts it in the quarantine under
    ``sink:INSTANCE``; every run tries it again until it lands.
    """

    interaction_id: str
    version: int
    reason: str
    kind: Literal["rejected", "invalid"] = "rejected"
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    """An interaction a sink wrote that must go from the target: its author was erased
    (``crmsync forget``), or its source took it down (:class:`Takedown`). ``external_id``
    is what the sink reported for it.

    .. versionadded:: 0.2
    """

    interaction_id: str
    version: int
    external_id: str | None = None
    reason: Literal["erasure", "takedown"] = "erasure"


class Sink(_Plugin):
    """Writes interactions somewhere (a CRM, its import files, a database).

    Override :meth:`write`. Writes must be idempotent (upsert by
    ``interaction_id``): after a crash the runner delivers again whatever has
    no receipt. A record the target refuses (or the sink cannot send) gets no
    receipt and is reported with :meth:`reject`; the rest of the batch goes on.
    """

    _role = "sink"
    #: Deliveries per :meth:`write` call. A class default; an instance may set its own
    #: in :meth:`open` (from an option: ``self.batch_size = self.config["batch_size"]``).
    batch_size: int = 500
    #: Records written between :meth:`flush` calls; ``None``: flush only at the end.
    #: Like ``batch_size``, an instance may set it in :meth:`open`.
    flush_every: int | None = None
    #: ``True``: instances may deliver disjoint shares of one run's backlog at once,
    #: in worker processes (each with its own ``context.part``). Only for sinks
    #: whose writes do not depend on order or on one another (files, upserts).
    parallel: ClassVar[bool] = False

    def __init__(self, instance: str, config: Mapping[str, Any], context: Context | None = None) -> None:
        super().__init__(instance, config, context)
        self.rejections: list[SinkRejection] = []

    def reject(self, delivery: Delivery, reason: str, *, request: Any = None, response: Any = None, invalid: bool = False) -> None:
        """Report that ``delivery`` was not written (return no receipt for it).

        ``reason`` says why in the user's terms (the API's message). Pass the
        ``request`` and ``response`` the target saw (JSON-able; auth headers
        left out: known secret values are masked anyway); ``invalid=True``
        when the sink refused the record before sending it. The record goes
        to the quarantine (``crmsync quarantine list``) and is tried again by
        the next run.

        .. versionadded:: 0.2
        """
        detail = None if request is None and response is None else {"request": request, "response": response}
        self.rejections.append(SinkRejection(delivery.interaction.interaction_id, delivery.version, reason, "invalid" if invalid else "rejected", detail))

    def plan(self, deliveries: Sequence[Delivery]) -> dict[str, int]:
        """What :meth:`write` would do with ``deliveries``, as counts by phrase
        (``{"notes to create": 3, "contacts to upsert by email": 2}``).

        Called by ``crmsync run --dry-run`` on the sink's backlog, without
        :meth:`open`: decide from the records and the config alone, send nothing.
        The default says nothing beyond the runner's create/update counts.

        .. versionadded:: 0.2
        """
        return {}

    def open(self) -> None:
        """Prepare for a run (connect, create directories)."""

    def write(self, deliveries: Sequence[Delivery]) -> Iterable[Receipt] | None:
        """Write a batch.

        Return receipts for what is durable now, or ``None`` when the batch is
        buffered and its receipts come from :meth:`flush`.
        """
        raise NotImplementedError

    def flush(self) -> Iterable[Receipt]:
        """Make buffered writes durable and return their receipts."""
        return ()

    def abort(self) -> None:
        """Discard writes that are not durable yet (the run failed)."""

    def delete_people(self, identity_ids: Sequence[str]) -> Iterable[str] | None:
        """Remove the records this sink *created* in the target for these people (erasure):
        a Lead, a contact or a party it made for a new author. Records the CRM had before
        crmsync are the CRM owner's to erase and must not be touched. Return the identity
        ids whose records are gone (``None``: all). The default raises
        ``NotImplementedError``: ``forget`` says the sink cannot, and why.

        .. versionadded:: 0.2
        """
        raise NotImplementedError

    def delete(self, deletions: Sequence[Deletion]) -> Iterable[str] | None:
        """Remove from the target what it holds of ``deletions`` (erasure: ``crmsync
        forget``). Called between :meth:`open` and :meth:`close`, on its own (no writes
        in the same session). Return the interaction ids that are durably gone (``None``:
        all of them); what is not returned stays on record as held by this sink, and
        ``forget`` lists it for deletion by hand. Deleting what is already gone must
        succeed (a second ``forget`` repeats it).

        The default raises ``NotImplementedError``: the sink cannot delete, and
        ``forget`` says so and lists the external ids.

        .. versionadded:: 0.2
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""


class Enricher(_Plugin):
    """Adds fields to normalized interactions before they are stored.

    Override :meth:`enrich` (or :meth:`enrich_batch` for vectorized work).
    Enrichers write the enrichment fields (``sentiment``, ``language``,
    ``needs_response``, ``priority``, ``mentions``) or ``extra``; they must not
    change content fields a source owns.
    """

    _role = "enricher"

    def enrich(self, interaction: Interaction) -> Interaction:
        """Return the interaction with fields added."""
        raise NotImplementedError

    def enrich_batch(self, interactions: list[Interaction]) -> list[Interaction]:
        """Enrich a batch; the default calls :meth:`enrich` on each."""
        return [self.enrich(i) for i in interactions]


@dataclass
class Match:
    """An author linked (or proposed) to a CRM record: what the identity ladder and a
    ``register_matchers`` plugin's ``match(author, index)`` yield."""

    contact_id: str  # the contact's identity_id
    crm_ids: dict[str, str]
    method: str
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "crm_ids": self.crm_ids, "method": self.method, "confidence": self.confidence, "evidence": self.evidence}


__all__ = ["Checkpoint", "Context", "Delivery", "Enricher", "Match", "Receipt", "Record", "Rejected", "Sink", "SinkRejection", "Source"]
