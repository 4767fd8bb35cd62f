"""``crmsync identities``: what matching uses, and the review queue of unsure matches."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add this group's commands to ``cli``."""
    @cli.group()
    def identities() -> None:
        """What matching uses (contacts, authors) and the matches it was not sure about.

        \b
        crmsync identities list --state crm  # the CRM contacts the sources read
        crmsync identities export -o ids.jsonl
        crmsync identities review            # candidates with their evidence
        crmsync identities accept 12         # link that author to that contact
        crmsync identities reject 13         # never propose that pair again
        Decisions are remembered; the next run links (and re-delivers) accordingly.
        """

    def _identity_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
        from .identity_export import STATES

        fn = click.option("--state", "match_state", type=click.Choice(STATES), help="crm: CRM records (matched: some interaction links to them; unmatched: none); author: authors not in the CRM.")(fn)
        fn = click.option("--source", help="Only identities this source instance wrote.")(fn)
        return click.option("--crm", help="Only identities with an id in this CRM (salesforce, hubspot, ...).")(fn)

    @identities.command("list")
    @_identity_filters
    @click.option("--limit", type=int, default=50, show_default=True, help="Rows to show (0: all).")
    @click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
    @pass_state
    @errors
    def id_list(state: State, crm: str | None, source: str | None, match_state: str | None, limit: int, as_json: bool) -> None:
        """Show the contacts and authors matching uses: state, CRM ids, name, emails.

        \b
        crmsync identities list --state crm            # what the CRM sources read
        crmsync identities list --crm salesforce --state unmatched
        """
        from .identity_export import identity_rows

        store = state.store()
        shown = total = 0
        try:
            for row in identity_rows(store, crm=crm, source=source, state=match_state):
                total += 1
                if limit and shown >= limit:
                    continue
                shown += 1
                if as_json:
                    click.echo(json.dumps(row, ensure_ascii=False))
                    continue
                ids = ", ".join(f"{k}={v}" for k, v in sorted(row["crm_ids"].items())) or "-"
                click.echo(f"{row['state']:<9} {ids:<34} {(row['name'] or '-')[:28]:<28} {', '.join(row['emails'])[:40]:<40} {row['interactions']:>5}  {row['source'] or ''}")
        finally:
            store.dispose()
        if not as_json:
            click.echo(f"{total} identities" + (f" ({shown} shown; --limit 0 for all, or identities export)" if shown < total else ""), err=True)

    @identities.command("export")
    @_identity_filters
    @click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True, help="Output format (CSV is spreadsheet-safe).")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
    @pass_state
    @errors
    def id_export(state: State, crm: str | None, source: str | None, match_state: str | None, fmt: str, output: str | None) -> None:
        """Export identities (contacts and authors) as JSON Lines or CSV.

        \b
        crmsync identities export --state crm -o contacts.jsonl
        crmsync identities export --format csv --crm hubspot > hubspot.csv
        """
        from .identity_export import CSV_COLUMNS, csv_values, identity_rows
        from ..contract.text import neutralize_formula

        store = state.store()
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        n = 0
        try:
            writer = csv.writer(out) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(CSV_COLUMNS)
            for row in identity_rows(store, crm=crm, source=source, state=match_state):
                if writer is not None:
                    writer.writerow([neutralize_formula(v) for v in csv_values(row)])
                else:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        finally:
            store.dispose()
            if output:
                out.close()
        if output:
            click.echo(f"exported {n} identities to {output}", err=True)

    @identities.command("review")
    @click.option("--status", type=click.Choice(["pending", "accepted", "rejected", "all"]), default="pending", show_default=True, help="Which candidates.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    @errors
    def review(state: State, status: str, as_json: bool) -> None:
        """List candidate matches with their evidence."""
        store = state.store()
        try:
            items = store.identities.candidates(None if status == "all" else status)
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps(items, indent=2, default=str))
            return
        if not items:
            click.echo("no candidates" if status != "pending" else "review queue is empty")
            return
        for it in items:
            author = it["author"]
            who = author.get("name") or ", ".join(author.get("emails") or author.get("handles") or []) or it["author_id"]
            click.echo(f"{it['id']:>5}  {it['status']:<8} {it['confidence']:.2f} {it['method']:<14} {who} -> contact {it['contact_id']}  {json.dumps(it['evidence'], ensure_ascii=False)}")

    def _decide(state: State, ids: tuple[int, ...], verdict: str) -> None:
        store = state.store()
        try:
            for i in ids:
                if store.identities.decide(i, verdict) is None:
                    raise Exit(f"no candidate {i}; see crmsync identities review --status all", 2)
        finally:
            store.dispose()
        click.echo(f"{verdict} {len(ids)} candidate(s); the next 'crmsync run' applies the decision")

    @identities.command("accept")
    @click.argument("candidate_ids", type=int, nargs=-1, required=True)
    @pass_state
    @errors
    def accept(state: State, candidate_ids: tuple[int, ...]) -> None:
        """Accept candidates: link the author to the contact from now on."""
        _decide(state, candidate_ids, "accepted")

    @identities.command("reject")
    @click.argument("candidate_ids", type=int, nargs=-1, required=True)
    @pass_state
    @errors
    def reject(state: State, candidate_ids: tuple[int, ...]) -> None:
        """Reject candidates: never link or propose that pair again."""
        _decide(state, candidate_ids, "rejected")

