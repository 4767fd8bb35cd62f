"""crmsync's built-in Singer bridge: any Singer tap as a source, any Singer target as a sink.

Registers the ``singer`` source and the ``singer`` sink. Uses only the public
``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .sink import SingerSink
from .source import SingerSource

__all__ = ["SingerSink", "SingerSource"]


@crmsync.hookimpl
def register_sources(register):  # noqa: ANN001, ANN201
    register(SingerSource)


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(SingerSink)
