"""``crmsync state``, ``crmsync sink redeliver`` and ``crmsync runs``: what the store
remembers about sources, sinks and runs, and how to make it forget.

Each command that changes the store takes the lock of the source or sink it
touches, so it never races a run (a busy one exits 3, saying which run holds it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from .common import Exit, State, errors, pass_state


def _confirm(yes: bool, question: str) -> None:
    if not yes and not click.confirm(question, default=False):
        raise Exit("nothing changed", 1)


def register(cli: click.Group) -> None:
    """Add this module's command groups to ``cli``."""

    @cli.group()
    def state() -> None:
        """Source bookmarks: where each source's next run starts.

        \b
        crmsync state show
        crmsync state reset blogs        # the next run reads blogs from the start
        """

    @state.command("show")
    @click.argument("source", required=False)
    @pass_state
    @errors
    def state_show(state_: State, source: str | None) -> None:
        """Print the bookmarks (all, or SOURCE's) as JSON."""
        store = state_.store()
        try:
            marks = store.bookmarks.all()
        finally:
            store.dispose()
        if source is not None:
            if source not in marks:
                raise Exit(f"source {source!r} has no bookmark (it has not completed a batch yet, or was reset); bookmarks: {', '.join(sorted(marks)) or 'none'}", 2)
            marks = {source: marks[source]}
        click.echo(json.dumps(marks, indent=2, sort_keys=True))

    @state.command("reset")
    @click.argument("source")
    @click.option("--yes", is_flag=True, help="Do not ask.")
    @pass_state
    @errors
    def state_reset(state_: State, source: str, yes: bool) -> None:
        """Forget SOURCE's bookmark: its next run reads everything again.

        Nothing is delivered twice: records read again that did not change are
        left alone, and sinks upsert by interaction id.
        """
        _known(state_, "sources", source)
        _confirm(yes, f"forget where source {source!r} stopped? Its next run reads everything again")
        store = state_.store()
        try:
            store.locks.acquire_locks("cli:state-reset", [f"source:{source}"])
            store.bookmarks.reset(source)
        finally:
            store.dispose()
        click.echo(f"source {source}: bookmark reset; the next run reads it from the start")

    @cli.group()
    def sink() -> None:
        """Delivery to one sink: send again what it already has.

        \b
        crmsync sink redeliver crm_import --since 2026-12-01
        crmsync sink redeliver crm_import --source support_mail --yes
        """

    @sink.command("redeliver")
    @click.argument("name")
    @click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]), help="Only what was delivered at or after this time (UTC): a date or date and time.")
    @click.option("--source", "sources", multiple=True, metavar="NAME", help="Only interactions of this source (repeatable).")
    @click.option("--yes", is_flag=True, help="Do not ask.")
    @pass_state
    @errors
    def sink_redeliver(state_: State, name: str, since: datetime | None, sources: tuple[str, ...], yes: bool) -> None:
        """Forget what sink NAME confirmed, so the next run sends it again.

        For an import that failed on the CRM's side, a file set that was deleted
        before it was imported, a CRM restored from a backup. The sink upserts by
        interaction id, so records it still holds are updated, not doubled.
        """
        _known(state_, "sinks", name)
        for s in sources:
            _known(state_, "sources", s)
        when = since.replace(tzinfo=UTC) if since is not None else None
        scope = " and ".join(p for p in (f"delivered since {when.isoformat()}" if when else "", f"from {', '.join(sources)}" if sources else "") if p) or "everything"
        _confirm(yes, f"send {scope} to sink {name!r} again with the next run?")
        store = state_.store()
        try:
            store.locks.acquire_locks("cli:redeliver", [f"sink:{name}"])
            n = store.ledger.forget(name, since=when, sources=list(sources) or None)
            backlog = store.ledger.backlog(name, state_.config.sinks[name].sources)
        finally:
            store.dispose()
        click.echo(f"sink {name}: {n} delivered record(s) forgotten ({scope}); backlog now {backlog}: crmsync run --sink {name}")

    @cli.group()
    def runs() -> None:
        """Past runs and their reports, as the store keeps them.

        \b
        crmsync runs list
        crmsync runs show 3f2a        # an id or a prefix only it has
        """

    @runs.command("list")
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many, newest first.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    @errors
    def runs_list(state_: State, limit: int, as_json: bool) -> None:
        """The newest runs: id, start, status and totals."""
        store = state_.store()
        try:
            items = store.runs.recent(limit)
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps([{k: v for k, v in r.items() if k != "report"} for r in items], indent=2))
            return
        for r in items:
            report = r["report"] or {}
            delivered = sum(s.get("delivered", 0) for s in report.get("sinks", []))
            new = sum(s.get("new", 0) for s in report.get("sources", []))
            click.echo(f"{r['run_id']}  {r['started_at'][:19]}  {r['status']:<18} new {new:>6}  delivered {delivered:>6}  {r['command'] or ''}")

    @runs.command("show")
    @click.argument("run_id")
    @pass_state
    @errors
    def runs_show(state_: State, run_id: str) -> None:
        """One run's report (as ``crmsync run --json`` printed it) from the store."""
        store = state_.store()
        try:
            item = store.runs.get(run_id)
        finally:
            store.dispose()
        if item is None:
            raise Exit(f"no run {run_id!r} (or the prefix fits more than one); crmsync runs list shows them", 2)
        click.echo(json.dumps(item, indent=2))


def _known(state_: State, kind: str, name: str) -> None:
    configured = getattr(state_.config, kind)
    if name not in configured:
        raise Exit(f"unknown {kind[:-1]} {name!r}; configured: {', '.join(sorted(configured)) or '(none)'}", 2)


__all__ = ["register"]
