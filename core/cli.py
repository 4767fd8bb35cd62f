"""The ``crmsync`` command line (click)."""

from __future__ import annotations

import csv
import functools
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Config, load_config, redact
from .errors import CrmsyncError
from .logs import setup_logging
from .plugins import PluginHost, get_host

EXIT_CODES_HELP = """\b
Exit codes:
  0  everything ok
  1  a source or sink failed, or records were quarantined
  2  configuration or usage error
  3  another run holds a lock this run needs: one of its sources (nothing
     ran), or a sink (skipped; its backlog goes with the next run). --wait
     waits instead"""


class _Exit(click.ClickException):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn CrmsyncError into a clean message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrmsyncError as exc:
            raise _Exit(redact(str(exc)), exc.exit_code) from None

    return wrapper


class State:
    """What the group options set up for subcommands."""

    def __init__(self, config_path: str | None, store_url: str | None) -> None:
        self.config_path = config_path
        self.store_url = store_url
        self._host: PluginHost | None = None
        self._config: Config | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = get_host()
        return self._host

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, self.host, store_url=self.store_url)
        return self._config

    def store(self):  # noqa: ANN201
        from .store import Store

        return Store(self.config.store_url)


pass_state = click.make_pass_decorator(State)


def create_cli() -> click.Group:
    """Build the CLI group with built-in and plugin commands."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES_HELP)
    @click.version_option(__version__, "-V", "--version", prog_name="crmsync")
    @click.option("-c", "--config", "config_path", envvar="CRMSYNC_CONFIG", type=click.Path(dir_okay=False), help="Config file. Default: ./crmsync.toml. Env: CRMSYNC_CONFIG.")
    @click.option("--store", "store_url", envvar="CRMSYNC_STORE_URL", help="SQLAlchemy URL of the store, overriding the config. Env: CRMSYNC_STORE_URL.")
    @click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning", show_default=True, envvar="CRMSYNC_LOG_LEVEL", help="Log verbosity (logs go to stderr).")
    @click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, envvar="CRMSYNC_LOG_FORMAT", help="Log format; json writes one object per line.")
    @click.pass_context
    def cli(ctx: click.Context, config_path: str | None, store_url: str | None, log_level: str, log_format: str) -> None:
        """Sync public customer conversations (feeds, mail, reviews) into your CRM.

        \b
        Quick start:
          crmsync init                 # write a commented crmsync.toml
          crmsync validate             # check it
          crmsync run --dry-run        # see what each sink would get
          crmsync run                  # sync; re-runs deliver only what is new
          crmsync status               # last runs, bookmarks, backlog, quarantine
        """
        setup_logging(log_level, log_format)
        ctx.obj = State(config_path, store_url)

    _add_builtin_commands(cli)
    _add_identity_commands(cli)
    try:
        get_host().register_commands(cli)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)
    return cli


def _add_builtin_commands(cli: click.Group) -> None:  # noqa: C901, PLR0915
    @cli.command()
    @click.argument("path", type=click.Path(dir_okay=False), default="crmsync.toml")
    @click.option("--force", is_flag=True, help="Overwrite an existing file.")
    def init(path: str, force: bool) -> None:
        """Write a commented starter config to PATH (default ./crmsync.toml)."""
        from importlib.resources import files

        target = Path(path)
        if target.exists() and not force:
            raise _Exit(f"{target} already exists; use --force to overwrite it", 2)
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
    @_errors
    def run(state: State, sources: tuple[str, ...], sinks: tuple[str, ...], dry_run: bool, full_refresh: bool, wait: bool, as_json: bool, progress: bool | None) -> None:
        """Read every source into the store, then deliver what each sink lacks.

        \b
        Examples:
          crmsync run                         # everything configured
          crmsync run --source blogs --dry-run
          crmsync run --json > report.json    # for schedulers
        """
        from .runner import Runner

        cfg = state.config
        store = state.store()
        show = sys.stderr.isatty() if progress is None else progress
        try:
            argv = " ".join(["run", *sys.argv[2:]]) if sys.argv[1:2] == ["run"] else "run"
            report = Runner(cfg, store, state.host, progress=show and not as_json).run(
                sources=list(sources) or None, sinks=list(sinks) or None, dry_run=dry_run, full_refresh=full_refresh, wait=wait, command=redact(argv)
            )
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
        else:
            _print_report(report)
        sys.exit(report.exit_code)

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    @_errors
    def status(state: State, as_json: bool) -> None:
        """Last runs, bookmarks, backlog per sink and quarantine counts."""
        cfg = state.config
        store = state.store()
        try:
            counts = store.counts()
            data = {
                "store": store.display_url,
                "runs": store.recent_runs(5),
                "bookmarks": store.all_bookmarks(),
                "interactions": counts["interactions"],
                "identities": counts["identities"],
                "quarantine_open": counts["quarantine_open"],
                "sinks": {
                    name: {"plugin": s.plugin, "backlog": store.backlog(name, s.sources), "delivered": store.ledger_counts().get(name, 0)}
                    for name, s in cfg.sinks.items()
                },
                "response_queue": store.response_queue(),
                "identity_review": len(store.candidates("pending")),
            }
        finally:
            store.dispose()
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        click.echo(f"store: {data['store']}")
        click.echo("interactions: " + (", ".join(f"{k} {v}" for k, v in sorted(data["interactions"].items())) or "none") + f"; identities {data['identities']}")
        click.echo("last runs:")
        for r in data["runs"] or []:
            rep = r["report"] or {}
            delivered = sum(s.get("delivered", 0) for s in rep.get("sinks", []))
            new = sum(s.get("new", 0) for s in rep.get("sources", []))
            click.echo(f"  {r['started_at']}  {r['status']:<20} new {new}, delivered {delivered}  ({r['run_id']})")
        if not data["runs"]:
            click.echo("  (none yet: crmsync run)")
        click.echo("sinks:")
        for name, s in data["sinks"].items():
            click.echo(f"  {name} ({s['plugin']}): delivered {s['delivered']}, backlog {s['backlog']}")
        click.echo("bookmarks: " + (", ".join(sorted(data["bookmarks"])) or "none"))
        q = data["quarantine_open"]
        click.echo("quarantine (open): " + (", ".join(f"{k} {v}" for k, v in sorted(q.items())) if q else "empty"))
        rq = data["response_queue"]
        click.echo(f"needs a response: {rq['overdue']} overdue, {rq['due_soon']} due within 24h")
        for item in rq["next"][:10]:
            click.echo(f"  {'OVERDUE' if item['overdue'] else 'due':<7} {item['due_at']}  {item['priority'] or '':<7} {item['source']}/{item['kind']}  {item['native_id']}")
        if data["identity_review"]:
            click.echo(f"identity review queue: {data['identity_review']} candidate(s): crmsync identities review")

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (default when stdout is not a terminal).")
    @pass_state
    def plugins(state: State, as_json: bool) -> None:
        """List plugins: version, what they register, where they came from, errors."""
        report = state.host.report()
        if as_json or not sys.stdout.isatty():
            click.echo(json.dumps(report, indent=2))
            return
        for p in report:
            regs = [f"{k}: {', '.join(p[k])}" for k in ("sources", "sinks", "enrichers", "commands") if p[k]]
            click.echo(f"{p['name']} {p['version'] or ''} ({p['origin']}{', ' + p['distribution'] if p['distribution'] and p['origin'] != 'builtin' else ''})")
            for r in regs:
                click.echo(f"    {r}")
            for e in p["errors"]:
                click.echo(f"    ERROR: {e}")

    @cli.command()
    @click.option("--offline", is_flag=True, help="Check the file only; do not connect to the CRMs and services plugins use.")
    @pass_state
    @_errors
    def validate(state: State, offline: bool) -> None:
        """Check the config file: plugins, options, secret references, store URL.

        Then each plugin that can checks its connection (a CRM sink: the
        credentials, and the custom fields or properties it needs). Nothing
        is written. Exits 2 on the first problem, saying how to fix it.
        """
        from .base import Context

        cfg = state.config
        for kind in ("sources", "sinks", "enrichers"):
            for inst in getattr(cfg, kind).values():
                cfg.resolved_options(inst)
        from .config import redact_url

        click.echo(f"{cfg.where}: ok ({len(cfg.sources)} sources, {len(cfg.sinks)} sinks, {len(cfg.enrichers)} enrichers; store {redact_url(cfg.store_url)})")
        if offline:
            return
        context = Context(config_dir=cfg.directory, dry_run=True)
        for kind in ("sources", "sinks"):
            for inst in getattr(cfg, kind).values():
                cls = state.host.get(kind, inst.plugin)
                if not callable(getattr(cls, "check", None)):
                    continue
                plugin = cls(inst.name, cfg.resolved_options(inst), context)
                try:
                    lines = plugin.check()
                except CrmsyncError as exc:
                    raise _Exit(redact(f"{inst.label}: {exc}"), 2) from None
                for line in lines or ():
                    click.echo(redact(f"{inst.label}: {line}"))

    @cli.command()
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
    def schema(output: str | None) -> None:
        """Print the shared schema (Interaction, Identity) as JSON Schema."""
        from .schema import schema_document

        text = json.dumps(schema_document(), indent=2)
        if output:
            Path(output).write_text(text + "\n", encoding="utf-8")
        else:
            click.echo(text)

    @cli.command()
    @click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True, help="Output format.")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
    @click.option("--source", "sources", multiple=True, metavar="NAME", help="Only interactions of this source (repeatable).")
    @pass_state
    @_errors
    def export(state: State, fmt: str, output: str | None, sources: tuple[str, ...]) -> None:
        """Export normalized interactions as JSON Lines or CSV (spreadsheet-safe)."""
        from .text import neutralize_formula

        store = state.store()
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        n = 0
        try:
            if fmt == "jsonl":
                for rec, version in store.iter_interactions(sources=list(sources) or None):
                    data = rec.to_json_dict()
                    data["version"] = version
                    out.write(json.dumps(data, ensure_ascii=False) + "\n")
                    n += 1
            else:
                cols = ["interaction_id", "version", "source", "channel", "kind", "native_id", "url", "title", "body_text", "published", "author_name", "author_email", "in_reply_to", "thread_id", "rating", "sentiment", "content_hash"]
                w = csv.writer(out)
                w.writerow(cols)
                for rec, version in store.iter_interactions(sources=list(sources) or None):
                    row = {
                        **rec.to_json_dict(),
                        "version": version,
                        "author_name": rec.author.name if rec.author else None,
                        "author_email": rec.author.emails[0] if rec.author and rec.author.emails else None,
                        "rating": rec.rating.normalized if rec.rating else None,
                        "sentiment": rec.sentiment.label if rec.sentiment else None,
                    }
                    w.writerow([neutralize_formula("" if row.get(c) is None else str(row.get(c))) for c in cols])
                    n += 1
        finally:
            store.dispose()
            if output:
                out.close()
        if output:
            click.echo(f"exported {n} interactions to {output}", err=True)

    @cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
    @click.argument("plugin")
    @click.argument("singer_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    @_errors
    def tap(ctx: click.Context, plugin: str, singer_args: tuple[str, ...]) -> None:
        """Run a source plugin as a Singer tap (singer-sdk), any installed one included.

        \b
        Examples:
          crmsync tap rss --about --format json          # settings it takes
          crmsync tap rss --config c.json --discover     # its catalog
          crmsync tap rss --config c.json --state s.json | target-jsonl

        The Singer config (c.json) holds the plugin's own options, as in a
        crmsync.toml source, plus "enrichers" (e.g. ["language", "sentiment"]),
        "instance" (source name on the records) and "quarantine_file" (rejected
        input as JSON lines). The bookmark travels as Singer STATE. The built-in
        sources are also installed as tap-crmsync-rss, tap-crmsync-email,
        tap-crmsync-reviews and tap-crmsync-crm-csv. Needs the singer extra:
        pip install 'crmsync[singer]'. `crmsync tap PLUGIN --help` lists the
        Singer options.
        """
        if plugin in ("-h", "--help"):
            click.echo(ctx.get_help())
            return
        from .singer import run_tap

        run_tap(plugin, list(singer_args) or ["--help"])

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
    @_errors
    def q_list(state: State, source: str | None, status: str, as_json: bool) -> None:
        """List quarantined records."""
        store = state.store()
        try:
            items = store.quarantine_items(source=source, status=None if status == "all" else status)
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
    @_errors
    def q_show(state: State, item_id: int, raw: bool) -> None:
        """Show one quarantined record."""
        store = state.store()
        try:
            item = store.quarantine_item(item_id)
        finally:
            store.dispose()
        if item is None:
            raise _Exit(f"no quarantined record {item_id}; see crmsync quarantine list --status all", 2)
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
    @_errors
    def q_replay(state: State, item_ids: tuple[int, ...], all_: bool, source: str | None) -> None:
        """Process quarantined records again (after fixing the cause).

        Records that now parse are stored (the next run delivers them) and
        marked replayed; the others stay open with the new reason.
        """
        from .replay import replay

        if not item_ids and not all_ and not source:
            raise _Exit("name record ids, or use --all or --source", 2)
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
    @_errors
    def q_dismiss(state: State, item_ids: tuple[int, ...]) -> None:
        """Mark quarantined records as dismissed (kept, no longer open).

        A record a sink could not write (source sink:NAME) is then no longer
        retried by that sink, until the interaction changes.
        """
        from .base import Receipt
        from .sink_quarantine import sink_of

        store = state.store()
        try:
            for i in item_ids:
                item = store.quarantine_item(i)
                sink = sink_of(item.source) if item else None
                if sink and item.status == "open":
                    # a record a sink could not write: recorded as handled, so the sink stops retrying it
                    found = store.get_interaction(item.ref)
                    if found is not None:
                        store.record_receipts(sink, [Receipt(item.ref, found[1], None)])
                        click.echo(f"{i}: sink {sink} will not retry interaction {item.ref} (until it changes)")
                store.set_quarantine_status(i, "dismissed")
        finally:
            store.dispose()
        click.echo(f"dismissed {len(item_ids)}")


def _add_identity_commands(cli: click.Group) -> None:
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
    @_errors
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
    @_errors
    def id_export(state: State, crm: str | None, source: str | None, match_state: str | None, fmt: str, output: str | None) -> None:
        """Export identities (contacts and authors) as JSON Lines or CSV.

        \b
        crmsync identities export --state crm -o contacts.jsonl
        crmsync identities export --format csv --crm hubspot > hubspot.csv
        """
        from .identity_export import CSV_COLUMNS, csv_values, identity_rows
        from .text import neutralize_formula

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
    @_errors
    def review(state: State, status: str, as_json: bool) -> None:
        """List candidate matches with their evidence."""
        store = state.store()
        try:
            items = store.candidates(None if status == "all" else status)
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
                if store.decide(i, verdict) is None:
                    raise _Exit(f"no candidate {i}; see crmsync identities review --status all", 2)
        finally:
            store.dispose()
        click.echo(f"{verdict} {len(ids)} candidate(s); the next 'crmsync run' applies the decision")

    @identities.command("accept")
    @click.argument("candidate_ids", type=int, nargs=-1, required=True)
    @pass_state
    @_errors
    def accept(state: State, candidate_ids: tuple[int, ...]) -> None:
        """Accept candidates: link the author to the contact from now on."""
        _decide(state, candidate_ids, "accepted")

    @identities.command("reject")
    @click.argument("candidate_ids", type=int, nargs=-1, required=True)
    @pass_state
    @_errors
    def reject(state: State, candidate_ids: tuple[int, ...]) -> None:
        """Reject candidates: never link or propose that pair again."""
        _decide(state, candidate_ids, "rejected")


def _print_report(report: Any) -> None:
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


def main() -> None:
    """Console entry point."""
    cli = create_cli()
    try:
        cli.main(prog_name="crmsync", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        # the interpreter's last collection over everything a run left behind takes
        # half a second after a large run; the OS frees it all anyway
        gc.freeze()


__all__ = ["create_cli", "main"]
