"""crmsync's built-in mail source: mbox files, Maildir folders and .eml files.

Registers the ``email`` source. Uses only the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .source import EmailSource

__all__ = ["EmailSource"]


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(EmailSource)
