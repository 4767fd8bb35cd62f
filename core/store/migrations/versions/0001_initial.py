"""Initial store: interactions, identities, bookmarks, deliveries, quarantine, runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("interaction_id", sa.String(36), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("native_id", sa.Text, nullable=False),
        sa.Column("published", TZ),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_interactions_source", "interactions", ["source"])
    op.create_table(
        "identities",
        sa.Column("identity_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("source", sa.String(200)),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "bookmarks",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("interaction_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("run_id", sa.String(36)),
        sa.Column("delivered_at", TZ, nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("error_type", sa.String(100), nullable=False),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("raw_hash", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
    )
    op.create_index("ix_quarantine_source_status", "quarantine", ["source", "status"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("command", sa.Text),
        sa.Column("report", sa.Text),
    )


def downgrade() -> None:
    for table in ("runs", "quarantine", "deliveries", "bookmarks", "identities", "interactions"):
        op.drop_table(table)
