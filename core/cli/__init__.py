"""The ``crmsync`` command line (click): one module per command group.

``sync`` (init, run), ``inspect`` (validate, status, plugins, schema, export),
``tap``, ``quarantine`` and ``identities``; ``common`` holds what they share.
Plugins add commands through the ``register_commands(cli)`` hook.
"""

from __future__ import annotations

import gc
import sys

import click

from ..host import __version__
from ..host.logs import setup_logging
from ..host.plugins import get_host
from . import identities, inspect, privacy, quarantine, report, scaffold, state, sync, tap
from .common import EXIT_CODES_HELP, State


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

    for part in (sync, inspect, tap, quarantine, identities, state, privacy, report, scaffold):
        part.register(cli)
    try:
        get_host().register_commands(cli)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)
    return cli


def main() -> None:
    """Console entry point."""
    cli = create_cli()
    try:
        cli.main(prog_name="crmsync", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from ..host.logs import json_mode

        if not json_mode():
            raise
        # --log-format json: the crash too is one JSON line (with its traceback)
        import logging

        logging.getLogger("crmsync.cli").error("crmsync failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        sys.exit(1)
    finally:
        # the interpreter's last collection over everything a run left behind takes
        # half a second after a large run; the OS frees it all anyway
        gc.freeze()


__all__ = ["create_cli", "main"]
