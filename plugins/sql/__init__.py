"""crmsync's built-in SQL database plugin.

Registers the ``sql`` sink: interactions, their authors and CRM links upserted
into tables of any SQLAlchemy database (PostgreSQL, MySQL/MariaDB, SQLite), for
CRMs and reverse-ETL syncs that read from a database. Uses only the public
``crmsync`` API.
"""

from __future__ import annotations

import crmsync

from .sink import SqlSink

__all__ = ["SqlSink"]


@crmsync.hookimpl
def register_sinks(register):  # noqa: ANN001, ANN201
    register(SqlSink)
