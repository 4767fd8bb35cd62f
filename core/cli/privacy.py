"""``crmsync forget``: erase a person from the store and from every sink that can
delete, and keep them out of later runs."""

from __future__ import annotations

import json
import sys
import uuid

import click

from .common import Exit, State, errors, pass_state


def register(cli: click.Group) -> None:
    """Add ``forget`` to ``cli``."""

    @cli.command()
    @click.option("--email", "emails", multiple=True, metavar="ADDRESS", help="The person's email address (repeatable).")
    @click.option("--handle", "handles", multiple=True, metavar="PLATFORM:NAME", help="A handle of the person, e.g. twitter:someone (repeatable).")
    @click.option("--author", "authors", multiple=True, metavar="IDENTITY_ID", help="An identity id from `crmsync identities list` (repeatable).")
    @click.option("--dry-run", is_flag=True, help="List what would be erased; change nothing.")
    @click.option("--yes", is_flag=True, help="Do not ask.")
    @click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
    @pass_state
    @errors
    def forget(state: State, emails: tuple[str, ...], handles: tuple[str, ...], authors: tuple[str, ...], dry_run: bool, yes: bool, as_json: bool) -> None:
        """Erase a person (a data-subject erasure request).

        Their interactions and identity leave the store; every sink holding their
        interactions is asked to delete them (crm_csv writes a deletion file set,
        sql deletes the rows); their keys go on the suppression list, stored only
        as SHA-256 hashes, so later runs skip whatever they write. A sink that cannot
        delete is named with the external ids to remove by hand (exit 1).

        \b
        Examples:
          crmsync forget --email jane@example.org --dry-run
          crmsync forget --email jane@example.org --handle twitter:janedoe --yes
        """
        from ..contract.base import Context
        from ..pipeline.privacy import erase, plan_erasure

        if not (emails or handles or authors):
            raise Exit("say whom to forget: --email, --handle or --author", 2)
        cfg = state.config
        store = state.store()
        try:
            plan = plan_erasure(store, cfg, emails=emails, handles=handles, author_ids=authors)
            summary = {
                "identities": len(plan.identity_ids),
                "interactions": len(plan.interactions),
                "keys_suppressed": len(plan.keys),
                "sinks": {name: len(d) for name, d in plan.held.items()},
            }
            if dry_run:
                _show(as_json, {"dry_run": True, **summary}, f"would erase {summary['identities']} identit(y/ies) and {summary['interactions']} interaction(s); "
                      + (", ".join(f"delete {n} from sink {s}" for s, n in summary["sinks"].items()) or "no sink holds any of them")
                      + f"; suppress {summary['keys_suppressed']} key(s)")
                return
            if not yes and not click.confirm(f"erase {summary['interactions']} interaction(s) of {summary['identities']} identit(y/ies), in the store and in {len(plan.held)} sink(s)?", default=False):
                raise Exit("nothing changed", 1)
            # forget changes what sinks hold: no run may deliver meanwhile
            store.locks.acquire_lock("cli:forget")
            context = Context(config_dir=cfg.directory, state_dir=cfg.directory / ".crmsync" / "plugins", run_id=str(uuid.uuid4()))
            results, counts = erase(store, cfg, state.host, plan, context)
        finally:
            store.dispose()
        failed = [r for r in results if r.left or r.people_note]  # something to remove by hand
        outcome = {**counts, "sinks": [{"sink": r.name, "deleted": r.deleted, "left": r.left, "error": r.error, "people_deleted": r.people, "people_note": r.people_note} for r in results]}
        lines = [f"erased {counts['interactions']} interaction(s) and {counts['identities']} identit(y/ies); {counts['suppressed_keys']} new key(s) suppressed"]
        lines += [f"sink {r.name}: deleted {r.deleted}" + (f", and {r.people} record(s) it had created for the person" if r.people else "")
                  + (f"; {len(r.left)} left ({r.error}): {', '.join(r.left[:20])}" if r.left else "") + (f"; people: {r.people_note}" if r.people_note else "") for r in results]
        _show(as_json, outcome, "\n".join(lines))
        if failed:
            sys.exit(1)


def _show(as_json: bool, data: dict, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


__all__ = ["register"]
