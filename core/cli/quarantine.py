"""``crmsync quarantine``: what sources or sinks could not take, and what to do with it."""

from __future__ import annotations

import json
import sys

import click

from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add this group's commands to ``cli``."""
    @cli.group()
    def quarantine() -> None:
        """Inspect and replay rejected input.

        \b
        crmsync quarantine list
        crmsync quarantine show 3 --raw > bad.xml
        crmsync quarantine replay --all      # after fixing the cause
        """

    @quarantine.command("list")
    @click.option("--source", help="Only this source (sink:NAME for the records a sink could not write).")
    @click.option("--status", type=click.Choice(["open", "replayed", "delivered", "dismissed", "all"]), default="open", show_default=True, help="Which items (delivered: records a sink could not write at first, written since).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    @errors
    def q_list(state: State, source: str | None, status: str, as_json: bool) -> None:
        """List quarantined records."""
        store = state.store()
        try:
            items = store.quarantine.items(source=source, status=None if status == "all" else status)
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps([i.summary() for i in items], indent=2))
            return
        if not items:
            click.echo("quarantine is empty" if status != "all" else "no quarantined records")
            return
        for i in items:
            click.echo(f"{i.id:>5}  {i.status:<9} {i.source}  {i.ref}  {i.reason}")

    @quarantine.command("show")
    @click.argument("item_id", type=int)
    @click.option("--raw", is_flag=True, help="Write the raw payload to stdout (e.g. to fix it).")
    @pass_state
    @errors
    def q_show(state: State, item_id: int, raw: bool) -> None:
        """Show one quarantined record."""
        store = state.store()
        try:
            item = store.quarantine.item(item_id)
        finally:
            store.dispose()
        if item is None:
            raise Exit(f"no quarantined record {item_id}; see crmsync quarantine list --status all", 2)
        if raw:
            sys.stdout.buffer.write(item.raw or b"")
            return
        for k, v in item.summary().items():
            click.echo(f"{k}: {v}")
        if item.raw:
            preview = item.raw[:2000].decode("utf-8", "replace")
            click.echo("raw (first 2000 bytes):")
            click.echo(preview)

    @quarantine.command("replay")
    @click.argument("item_ids", type=int, nargs=-1)
    @click.option("--all", "all_", is_flag=True, help="Replay every open record.")
    @click.option("--source", help="Only records of this source.")
    @pass_state
    @errors
    def q_replay(state: State, item_ids: tuple[int, ...], all_: bool, source: str | None) -> None:
        """Process quarantined records again (after fixing the cause).

        Records that now parse are stored (the next run delivers them) and
        marked replayed; the others stay open with the new reason.
        """
        from ..pipeline.replay import replay

        if not item_ids and not all_ and not source:
            raise Exit("name record ids, or use --all or --source", 2)
        store = state.store()
        try:
            results = replay(state.config, store, state.host, ids=list(item_ids) or None, source=source)
        finally:
            store.dispose()
        fixed = sum(1 for r in results if r["status"] == "replayed")
        for r in results:
            click.echo(f"{r['id']:>5}  {r['status']:<9} {r['detail']}")
        click.echo(f"{fixed} of {len(results)} replayed; run 'crmsync run' to deliver them")
        sys.exit(0 if fixed == len(results) else 1)

    @quarantine.command("dismiss")
    @click.argument("item_ids", type=int, nargs=-1, required=True)
    @pass_state
    @errors
    def q_dismiss(state: State, item_ids: tuple[int, ...]) -> None:
        """Mark quarantined records as dismissed (kept, no longer open).

        A record a sink could not write (source sink:NAME) is then no longer
        retried by that sink, until the interaction changes.
        """
        from ..contract.base import Receipt
        from ..pipeline.deliver.rejections import sink_of

        store = state.store()
        try:
            for i in item_ids:
                item = store.quarantine.item(i)
                sink = sink_of(item.source) if item else None
                if sink and item.status == "open":
                    # a record a sink could not write: recorded as handled, so the sink stops retrying it
                    found = store.interactions.get(item.ref)
                    if found is not None:
                        store.ledger.record(sink, [Receipt(item.ref, found[1], None)])
                        click.echo(f"{i}: sink {sink} will not retry interaction {item.ref} (until it changes)")
                store.quarantine.set_status(i, "dismissed")
        finally:
            store.dispose()
        click.echo(f"dismissed {len(item_ids)}")

