"""The crmsync plugin contract: hook specifications, nothing else.

Implement a hook with ``@crmsync.hookimpl`` on a function of the same name in
a module (or class) registered under the ``crmsync`` entry-point group. An
implementation may take only the arguments it uses. Arguments are only ever
added to a hook, never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .base import Enricher, Sink, Source

hookspec = pluggy.HookspecMarker("crmsync")
hookimpl = pluggy.HookimplMarker("crmsync")


@hookspec
def register_sources(register: Callable[[type[Source]], None]) -> None:
    """Register source classes.

    :param register: call ``register(SourceClass)`` once per class; the class's
        ``name`` is what a config's ``plugin = "..."`` selects. A name that is
        already taken is reported by ``crmsync plugins`` and the first
        registration wins (built-ins load first).
    :returns: nothing; every implementation is called.

    .. versionadded:: 0.1
    """


@hookspec
def register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register sink classes.

    :param register: call ``register(SinkClass)`` once per class; names as for
        :func:`register_sources`.
    :returns: nothing; every implementation is called.

    .. versionadded:: 0.1
    """


@hookspec
def register_enrichers(register: Callable[[type[Enricher]], None]) -> None:
    """Register enricher classes: transforms that add fields to interactions.

    :param register: call ``register(EnricherClass)`` once per class.
    :returns: nothing; every implementation is called.

    .. versionadded:: 0.1
    """


@hookspec
def register_matchers(register: Callable[[type], None]) -> None:
    """Register identity matchers: extra rungs of the identity-resolution ladder.

    :param register: call ``register(MatcherClass)``; the class has a ``name``
        and a method ``match(author, index)`` returning
        :class:`crmsync.identity.Match` objects (see :mod:`crmsync.identity`).
        Matches at or above the auto-link threshold link automatically when
        they are the only best match; others go to the review queue.
    :returns: nothing; every implementation is called.

    .. versionadded:: 0.1
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``crmsync`` command line.

    :param cli: the top-level :class:`click.Group`; call ``@cli.command()`` on
        it. Commands whose names clash with built-in ones are reported.
    :returns: nothing; every implementation is called.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def resolve_secret(scheme: str, reference: str) -> Any:
    """Resolve a secret reference of a scheme crmsync does not know.

    Built in are ``env:NAME`` and ``file:PATH``; a plugin can add e.g.
    ``vault:path#key``.

    :param scheme: the part before the first colon (``vault``).
    :param reference: the rest.
    :returns: the secret's value as ``str``, or ``None`` if this
        implementation does not handle ``scheme``. ``firstresult``: the first
        non-``None`` answer wins.

    .. versionadded:: 0.1
    """
