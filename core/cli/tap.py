"""``crmsync tap``: any source plugin as a Singer tap."""

from __future__ import annotations

import click

from .common import errors


def register(cli: click.Group) -> None:
    """Add this group's commands to ``cli``."""
    @cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
    @click.argument("plugin")
    @click.argument("singer_args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    @errors
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

