"""Alembic environment for the crmsync store.

crmsync runs migrations itself (``Store.migrate``) and passes its connection
in ``config.attributes["connection"]``; ``alembic`` on the command line works
too with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from crmsync.store.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        engine = create_engine(url)
        with engine.begin() as conn:
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table="crmsync_alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
