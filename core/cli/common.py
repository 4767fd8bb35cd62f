"""What every command group shares: the state the group options set up, the error
wrapper that turns a CrmsyncError into its message and exit code, and the exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ..host.config import Config, load_config, redact
from ..contract.errors import CrmsyncError
from ..host.plugins import PluginHost, get_host

EXIT_CODES_HELP = """\b
Exit codes:
  0  everything ok
  1  a source or sink failed, or records were quarantined
  2  configuration or usage error
  3  another run holds a lock this run needs: one of its sources (nothing
     ran), or a sink (skipped; its backlog goes with the next run). --wait
     waits instead
  130  interrupted (Ctrl-C): what was written is kept; the report still
     goes out"""


class Exit(click.ClickException):
    """A clean failure: the message (a JSON log line with --log-format json) and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code

    def show(self, file: Any = None) -> None:
        from ..host.logs import error_line, json_mode

        if json_mode():
            click.echo(error_line(self.format_message(), exit_code=self.exit_code), err=True)
        else:
            super().show(file)


def errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn CrmsyncError into a clean message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrmsyncError as exc:
            raise Exit(redact(str(exc)), exc.exit_code) from None

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
        from ..store import Store

        return Store(self.config.store_url)


pass_state = click.make_pass_decorator(State)


__all__ = ["EXIT_CODES_HELP", "Exit", "State", "errors", "pass_state"]
