"""crmsync's built-in review source: CSV and JSON Lines review exports.

Registers the ``reviews`` source. Uses only the public ``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .source import ReviewsSource

__all__ = ["ReviewsSource"]


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(ReviewsSource)
