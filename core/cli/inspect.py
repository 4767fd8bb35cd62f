"""Checking and looking: ``validate``, ``status``, ``plugins``, ``schema``, ``export``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from ..host.secrets import redact
from ..contract.errors import CrmsyncError
from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add this group's commands to ``cli``."""
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    @errors
    def status(state: State, as_json: bool) -> None:
        """Last runs, bookmarks, backlog per sink and quarantine counts."""
        cfg = state.config
        store = state.store()
        try:
            counts = store.counts()
            data = {
                "store": store.display_url,
                "runs": store.runs.recent(5),
                "bookmarks": store.bookmarks.all(),
                "interactions": counts["interactions"],
                "identities": counts["identities"],
                "quarantine_open": counts["quarantine_open"],
                "sinks": {
                    name: {"plugin": s.plugin, "backlog": store.ledger.backlog(name, s.sources), "delivered": store.ledger.counts().get(name, 0)}
                    for name, s in cfg.sinks.items()
                },
                "response_queue": store.interactions.response_queue(),
                "identity_review": len(store.identities.candidates("pending")),
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
    @click.option("--json", "as_json", is_flag=True, help="Print JSON: every plugin with its options (for scripts).")
    @click.option("--options", "with_options", is_flag=True, help="List each source's, sink's and enricher's options too.")
    @pass_state
    def plugins(state: State, as_json: bool, with_options: bool) -> None:
        """List plugins as a table: name, version, where they came from, what they
        register. --options adds each option (type, default, description); --json
        prints everything as JSON.

        \b
        Examples:
          crmsync plugins
          crmsync plugins --options
          crmsync plugins --json | jq '.[].name'
        """
        report = state.host.report()
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
            return
        rows = [["NAME", "VERSION", "ORIGIN", "SOURCES", "SINKS", "ENRICHERS", "COMMANDS"]]
        for p in report:
            origin = p["origin"] + (f" ({p['distribution']})" if p["distribution"] and p["origin"] != "builtin" else "")
            rows.append([p["name"], p["version"] or "-", origin, *(", ".join(p[k]) or "-" for k in ("sources", "sinks", "enrichers", "commands"))])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        for p in report:
            for e in p["errors"]:
                click.echo(f"ERROR {p['name']}: {e}")
            if not with_options:
                continue
            for kind, classes in p.get("options", {}).items():
                for name, options in classes.items():
                    click.echo(f"\n{kind[:-1]} {name!r} ({p['name']}) options:")
                    for key, o in options.items():
                        flags = "".join(f", {f}" for f in ("required", "secret") if o.get(f))
                        default = f" = {json.dumps(o['default'], default=str)}" if "default" in o else ""
                        click.echo(f"  {key} ({o['type']}{flags}){default}" + (f": {o['description']}" if o.get("description") else ""))

    @cli.command()
    @click.option("--offline", is_flag=True, help="Check the file only; do not connect to the CRMs and services plugins use.")
    @pass_state
    @errors
    def validate(state: State, offline: bool) -> None:
        """Check the config file: plugins, options, secret references, store URL.

        Then each plugin that can checks its connection (a CRM sink: the
        credentials, and the custom fields or properties it needs). Nothing
        is written. Exits 2 on the first problem, saying how to fix it.
        """
        from ..contract.base import Context

        cfg = state.config
        for kind in ("sources", "sinks", "enrichers"):
            for inst in getattr(cfg, kind).values():
                cfg.resolved_options(inst)
        from ..host.secrets import redact_url

        from ..pipeline.preflight import preflight
        from ..store.database import probe

        lines = preflight(cfg, state.host)
        click.echo(f"{cfg.where}: ok ({len(cfg.sources)} sources, {len(cfg.sinks)} sinks, {len(cfg.enrichers)} enrichers; store {redact_url(cfg.store_url)})")
        for line in lines:
            click.echo(redact(line))
        if offline:
            return
        click.echo(redact(probe(cfg.store_url)))
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
                    raise Exit(redact(f"{inst.label}: {exc}"), 2) from None
                for line in lines or ():
                    click.echo(redact(f"{inst.label}: {line}"))

    @cli.command()
    @click.argument("record", type=click.Choice(["interaction", "identity"]), default="interaction")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
    def schema(record: str, output: str | None) -> None:
        """Print the JSON Schema (draft 2020-12) of a shared record.

        Its root validates one line of `crmsync export` (or, with `identity`, one
        identity); the nested record types are under `$defs`.

        \b
        Examples:
          crmsync schema -o interaction.schema.json
          crmsync export > interactions.jsonl    # each line validates against it (README: The shared schema)
          crmsync schema identity
        """
        from ..contract.schema import schema_document

        text = json.dumps(schema_document(record), indent=2)
        if output:
            Path(output).write_text(text + "\n", encoding="utf-8")
        else:
            click.echo(text)

    @cli.command()
    @click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True, help="Output format.")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
    @click.option("--source", "sources", multiple=True, metavar="NAME", help="Only interactions of this source (repeatable).")
    @pass_state
    @errors
    def export(state: State, fmt: str, output: str | None, sources: tuple[str, ...]) -> None:
        """Export normalized interactions as JSON Lines or CSV (spreadsheet-safe)."""
        from ..contract.text import neutralize_formula

        store = state.store()
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        n = 0
        try:
            if fmt == "jsonl":
                for rec, version in store.interactions.iter(sources=list(sources) or None):
                    data = rec.to_json_dict()
                    data["version"] = version
                    out.write(json.dumps(data, ensure_ascii=False) + "\n")
                    n += 1
            else:
                cols = ["interaction_id", "version", "source", "channel", "kind", "native_id", "url", "title", "body_text", "published", "author_name", "author_email", "in_reply_to", "thread_id", "rating", "sentiment", "content_hash"]
                w = csv.writer(out)
                w.writerow(cols)
                for rec, version in store.interactions.iter(sources=list(sources) or None):
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

