"""crmsync's built-in CRM import-file plugin.

Registers the ``crm_csv`` sink (import-ready CSV files, written atomically with
a manifest) and the ``crm_csv`` source (the CRM's contacts export, for
identity matching). Uses only the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .sink import CsvSink, read_import_files
from .source import ContactsSource

__all__ = ["ContactsSource", "CsvSink", "read_import_files"]


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(CsvSink)


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(ContactsSource)
