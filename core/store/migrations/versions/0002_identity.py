"""Identity resolution: review queue, decisions, author clusters; contacts flagged.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("is_contact", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_identities_is_contact", "identities", ["is_contact"])
    op.create_table(
        "identity_candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("author_id", sa.String(36), nullable=False),
        sa.Column("contact_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("interaction_id", sa.String(36)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ),
        sa.Column("applied", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("author_id", "contact_id", name="uq_identity_candidates_pair"),
    )
    op.create_index("ix_identity_candidates_status", "identity_candidates", ["status"])
    op.create_table(
        "identity_keys",
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("identity_id", sa.String(36), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("identity_keys")
    op.drop_table("identity_candidates")
    op.drop_index("ix_identities_is_contact", "identities")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("is_contact")
