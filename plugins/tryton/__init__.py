"""crmsync's built-in Tryton plugin.

Registers the ``tryton`` sink (interactions as notes on parties) and the
``tryton`` source (parties as CRM contacts for identity matching). Talks to a
Tryton server over its JSON-RPC API only; nothing of Tryton is imported. Uses
only the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .client import TrytonClient
from .sink import TrytonSink, marker, party_code
from .source import TrytonContactsSource

__all__ = ["TrytonClient", "TrytonContactsSource", "TrytonSink", "marker", "party_code"]


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(TrytonSink)


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(TrytonContactsSource)
