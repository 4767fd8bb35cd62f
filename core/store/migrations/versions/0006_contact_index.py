"""The contact index in the store: every lookup key of every CRM contact.

Identity resolution looked contacts up in an index held in memory by the run and
each source worker. It grew with the CRM (200,000 contacts: about 200 MB in every
process). It is a table now, kept in step with the contacts (``identities.indexed_at``
says which version of a contact its rows describe), and read a batch at a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_index",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("contact_id", sa.String(36), primary_key=True),
    )
    op.create_index("ix_contact_index_contact_id", "contact_index", ["contact_id"])
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("indexed_at")
    op.drop_index("ix_contact_index_contact_id", "contact_index")
    op.drop_table("contact_index")
