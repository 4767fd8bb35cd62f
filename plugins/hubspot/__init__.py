"""crmsync's built-in HubSpot plugin.

Registers the ``hubspot`` sink (interactions as notes on contacts, through
HubSpot's batch API) and the ``hubspot`` source (contacts for identity
matching). Uses the official ``hubspot-api-client`` and only the public
``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .sink import HubSpotSink
from .source import HubSpotContactsSource

__all__ = ["HubSpotContactsSource", "HubSpotSink"]


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(HubSpotSink)


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(HubSpotContactsSource)
