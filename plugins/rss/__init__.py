"""crmsync's built-in feed source: RSS, Atom and JSON Feed files.

Registers the ``rss`` source. Uses only the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .source import RssSource

__all__ = ["RssSource"]


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(RssSource)
