"""crmsync's built-in Salesforce plugin.

Registers the ``salesforce`` sink (interactions as Tasks upserted by an
external id, on the matched Contact or Lead) and the ``salesforce`` source
(Contacts and Leads for identity matching). Uses simple-salesforce and only
the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .sink import SalesforceSink
from .source import SalesforceContactsSource

__all__ = ["SalesforceContactsSource", "SalesforceSink"]


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(SalesforceSink)


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(SalesforceContactsSource)
