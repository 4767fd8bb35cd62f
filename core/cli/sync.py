"""Setting up and syncing: ``init`` and ``run`` (and how a run report is printed)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from ..contract.errors import LockedError
from ..host.secrets import redact
from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add this group's commands to ``cli``."""
    @cli.command()
    @click.argument("path", type=click.Path(dir_okay=False), default="crmsync.toml")
    @click.option("--force", is_flag=True, help="Overwrite an existing file.")
    def init(path: str, force: bool) -> None:
        """Write a commented starter config to PATH (default ./crmsync.toml)."""
        from importlib.resources import files

        target = Path(path)
        if target.exists() and not force:
            raise Exit(f"{target} already exists; use --force to overwrite it", 2)
        target.write_text(files("crmsync").joinpath("templates/crmsync.toml").read_text(encoding="utf-8"), encoding="utf-8")
        click.echo(f"wrote {target}; edit it, then: crmsync validate && crmsync run --dry-run")

    @cli.command()
    @click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable).")
    @click.option("--sink", "sinks", multiple=True, metavar="NAME", help="Only this sink (repeatable).")
    @click.option("--dry-run", is_flag=True, help="Read sources and show what each sink would create or update; write nothing.")
    @click.option("--full-refresh", is_flag=True, help="Ignore the selected sources' bookmarks and read everything again (still no duplicates).")
    @click.option("--wait", is_flag=True, help="If another run holds a source or sink this run needs, wait for it instead of exiting with 3.")
    @click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
    @click.option("--progress/--no-progress", default=None, help="Progress bars (default: on when stderr is a terminal).")
    @pass_state
    @errors
    def run(state: State, sources: tuple[str, ...], sinks: tuple[str, ...], dry_run: bool, full_refresh: bool, wait: bool, as_json: bool, progress: bool | None) -> None:
        """Read every source into the store, then deliver what each sink lacks.

        \b
        Examples:
          crmsync run                         # everything configured
          crmsync run --source blogs --dry-run
          crmsync run --json > report.json    # for schedulers
        """
        from ..pipeline.preflight import preflight
        from ..pipeline.run import Runner

        cfg = state.config
        # what would fail the run halfway (a missing input, a bad store URL) exits 2 now
        preflight(cfg, state.host, sources=list(sources) or None, sinks=list(sinks) or None)
        try:
            store = state.store()
        except LockedError as exc:
            _locked(exc, as_json)
        show = sys.stderr.isatty() if progress is None else progress
        try:
            argv = " ".join(["run", *sys.argv[2:]]) if sys.argv[1:2] == ["run"] else "run"
            report = Runner(cfg, store, state.host, progress=show and not as_json).run(
                sources=list(sources) or None, sinks=list(sinks) or None, dry_run=dry_run, full_refresh=full_refresh, wait=wait, command=redact(argv)
            )
        except KeyboardInterrupt as exc:
            # Ctrl-C: the run stopped where it could; its report still goes out (exit 130)
            report = getattr(exc, "report", None)
            if report is None:
                raise
            click.echo("interrupted: what was read and delivered is kept; the next run goes on from there", err=True)
        except LockedError as exc:
            _locked(exc, as_json)
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
        else:
            print_report(report)
        sys.exit(report.exit_code)


def _locked(exc: LockedError, as_json: bool) -> NoReturn:
    """Another process holds the store: exit 3, and with --json a report that says so."""
    if as_json:
        from ..pipeline.report import RunReport

        now = datetime.now(UTC).isoformat()
        report = RunReport(run_id="", started_at=now, finished_at=now, status="locked", exit_code=exc.exit_code, error=redact(str(exc)))
        click.echo(json.dumps(report.as_dict(), indent=2))
    raise exc


def print_report(report: Any) -> None:
    """The run report as a table (``crmsync run`` without ``--json``)."""
    click.echo(f"run {report.run_id}: {report.status} in {report.duration:.2f}s" + (" (dry run: nothing written)" if report.dry_run else ""))
    if report.sources:
        click.echo(f"  {'source':<20} {'plugin':<10} {'read':>6} {'new':>6} {'updated':>7} {'same':>6} {'quarant.':>8}  status")
        for s in report.sources:
            click.echo(f"  {s.name:<20} {s.plugin:<10} {s.read:>6} {s.new:>6} {s.updated:>7} {s.unchanged:>6} {s.quarantined:>8}  {s.status}")
            for e in s.errors:
                click.echo(f"      error: {e}")
            for n in s.notes:
                click.echo(f"      note: {n}")
    if report.sinks:
        label = "would create" if report.dry_run else "created"
        click.echo(f"  {'sink':<20} {'plugin':<10} {label:>12} {'updated':>7} {'delivered':>9} {'backlog':>7}  status")
        for s in report.sinks:
            click.echo(f"  {s.name:<20} {s.plugin:<10} {s.created:>12} {s.updated:>7} {s.delivered:>9} {s.backlog:>7}  {s.status}")
            if s.rejected or s.invalid:
                click.echo(f"      not written: {s.rejected} rejected by the target, {s.invalid} invalid (kept in the backlog, tried again next run): crmsync quarantine list --source sink:{s.name}")
            for e in s.errors:
                click.echo(f"      error: {e}")
            for n in s.notes:
                click.echo(f"      note: {n}")
    ident = getattr(report, "identity", None) or {}
    if ident:
        click.echo(f"  identity: {ident.get('contacts', 0)} CRM contacts; linked {ident.get('linked', 0)}, relinked {ident.get('relinked', 0)}, {ident.get('candidates', 0)} new candidate(s) for review")
    q = sum(s.quarantined for s in report.sources)
    if q:
        click.echo(f"  {q} record(s) quarantined: crmsync quarantine list")


__all__ = ["print_report", "register"]
