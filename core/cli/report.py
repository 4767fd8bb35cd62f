"""``crmsync report``: the HTML report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add ``report`` to ``cli``."""

    @cli.command()
    @click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default="report.html", show_default=True, help="The HTML file to write.")
    @pass_state
    @errors
    def report(state: State, out: str) -> None:
        """Write one self-contained HTML file from the store: the response queue (overdue
        first, with links), influencers, ambassadors and detractors with what they said
        lately, sentiment over time per source and brand, mentions per brand term.

        It opens offline, in any browser: no script, no fonts or images fetched.

        \b
        Examples:
          crmsync report                      # report.html
          crmsync report --out /srv/www/crm/today.html
        """
        from ..report import render_html, report_data

        t0 = time.monotonic()
        store = state.store()
        try:
            data = report_data(store)
        finally:
            store.dispose()
        try:
            html = render_html(data)
        except RuntimeError as exc:
            raise Exit(str(exc), 2) from None
        Path(out).write_text(html, encoding="utf-8")
        click.echo(f"wrote {out} ({len(html.encode()) // 1024} KiB, {data['interactions_total']} interactions) in {time.monotonic() - t0:.2f}s")


__all__ = ["register"]
