"""Triage and influence columns on interactions (queried by status and the influence scoring).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("author_id", sa.String(36)))
        batch.add_column(sa.Column("needs_response", sa.Boolean))
        batch.add_column(sa.Column("priority", sa.String(20)))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("sentiment_score", sa.Float))
        batch.add_column(sa.Column("engagement", sa.Integer))
        batch.add_column(sa.Column("mention_count", sa.Integer))
    op.create_index("ix_interactions_author_id", "interactions", ["author_id"])
    op.create_index("ix_interactions_due", "interactions", ["needs_response", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_interactions_due", "interactions")
    op.drop_index("ix_interactions_author_id", "interactions")
    with op.batch_alter_table("interactions") as batch:
        for col in ("mention_count", "engagement", "sentiment_score", "due_at", "priority", "needs_response", "author_id"):
            batch.drop_column(col)
