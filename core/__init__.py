"""crmsync: a social-CRM connector framework.

This module is the public API plugins may use; everything else is internal.

* ``hookimpl``: mark hook implementations (see :mod:`crmsync.hookspecs`).
* ``Source``, ``Sink``, ``Enricher``: plugin base classes.
* ``Interaction``, ``Identity`` and the other record types, ``make_interaction_id``.
* ``Checkpoint``, ``Rejected``, ``Delivery``, ``Receipt``, ``Context``: what flows between plugins and the runner.
* The errors: ``CrmsyncError`` and its branches.
* Helpers: ``sanitize_html``, ``html_to_text``, ``retrying``, ``Secret``.
* The conformance kit lives in :mod:`crmsync.testing`.
"""

from __future__ import annotations

from . import _moved
from .host import __version__
from .helpers.activity import ACTIVITY_FIELDS, Activity, activity_text, activity_values
from .contract.base import Checkpoint, Context, Deletion, Delivery, Enricher, Match, Receipt, Record, Rejected, Sink, SinkRejection, Source, Takedown, describe_failure
from .helpers.brands import BrandRules, fold
from .host.secrets import Secret
from .contract.errors import ConfigError, CrmsyncError, FatalError, PluginError, RetriableError, SkippableError
from .contract.hookspecs import hookimpl
from .helpers.journal import CreateJournal
from .helpers.http import Fetcher, FetchError, FetchResult
from .helpers.rest import Cursor, LinkHeader, OAuth2ClientCredentials, Offset, PageNumber, ReplicationKey, RestClient, api_key, basic, bearer
from .helpers.retry import call_with_retries, retrying
from .contract.schema import (
    SCHEMA_VERSION,
    Attachment,
    Identity,
    Interaction,
    ItemReviewed,
    Provenance,
    Rating,
    Sentiment,
    content_hash,
    flat_json_schema,
    is_globally_unique,
    make_identity_id,
    make_interaction_id,
)
from .helpers.tabular import Decoded, count_lines, csv_line, decode_export, decode_text, export_lines, read_csv
from .contract.text import html_to_text, neutralize_formula, normalize_text, safe_url, sanitize_html, truncate


_moved.install()

__all__ = [
    "ACTIVITY_FIELDS",
    "Activity",
    "Attachment",
    "BrandRules",
    "Checkpoint",
    "ConfigError",
    "Context",
    "CreateJournal",
    "CrmsyncError",
    "Cursor",
    "Decoded",
    "Deletion",
    "Delivery",
    "Enricher",
    "FatalError",
    "FetchError",
    "FetchResult",
    "Fetcher",
    "Identity",
    "Interaction",
    "ItemReviewed",
    "LinkHeader",
    "Match",
    "OAuth2ClientCredentials",
    "Offset",
    "PageNumber",
    "PluginError",
    "Provenance",
    "Rating",
    "Receipt",
    "Record",
    "Rejected",
    "ReplicationKey",
    "RestClient",
    "RetriableError",
    "SCHEMA_VERSION",
    "Secret",
    "Sentiment",
    "Sink",
    "SinkRejection",
    "SkippableError",
    "Source",
    "Takedown",
    "__version__",
    "activity_text",
    "activity_values",
    "api_key",
    "basic",
    "bearer",
    "call_with_retries",
    "content_hash",
    "count_lines",
    "csv_line",
    "decode_export",
    "decode_text",
    "export_lines",
    "describe_failure",
    "flat_json_schema",
    "fold",
    "hookimpl",
    "html_to_text",
    "is_globally_unique",
    "make_identity_id",
    "make_interaction_id",
    "neutralize_formula",
    "normalize_text",
    "read_csv",
    "retrying",
    "safe_url",
    "sanitize_html",
    "truncate",
]
