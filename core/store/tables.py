"""Table definitions of the crmsync store (SQLAlchemy Core).

The schema is created and upgraded by the Alembic migrations in
``crmsync/store/migrations``; these definitions must match the latest migration
(a test checks that).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    UniqueConstraint,
    false,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Normalized interactions; ``version`` goes up on each edit (new content hash).
interactions = Table(
    "interactions",
    metadata,
    Column("interaction_id", String(36), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("channel", String(50), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("native_id", Text, nullable=False),
    Column("published", DateTime(timezone=True)),
    Column("content_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("record", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("author_id", String(36)),
    Column("needs_response", Boolean),
    Column("priority", String(20)),
    Column("due_at", DateTime(timezone=True)),
    Column("sentiment_score", Float),
    Column("engagement", Integer),
    Column("mention_count", Integer),
    Index("ix_interactions_source", "source"),
    Index("ix_interactions_author_id", "author_id"),
    Index("ix_interactions_due", "needs_response", "due_at"),
    # the sinks' backlog and pages read only these: an index-only scan
    Index("ix_interactions_pending", "interaction_id", "version", "source"),
)

#: Authors and CRM contacts.
identities = Table(
    "identities",
    metadata,
    Column("identity_id", String(36), primary_key=True),
    Column("name", Text),
    Column("source", String(200)),
    Column("record", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("is_contact", Boolean, nullable=False, server_default=false()),
    # the updated_at of the version contact_index describes (NULL: not indexed yet)
    Column("indexed_at", DateTime(timezone=True)),
    Index("ix_identities_is_contact", "is_contact"),
)

#: Identity-resolution candidates below the auto-link threshold (the review queue) and decisions.
identity_candidates = Table(
    "identity_candidates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("author_id", String(36), nullable=False),
    Column("contact_id", String(36), nullable=False),
    Column("method", String(50), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("interaction_id", String(36)),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("applied", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("author_id", "contact_id", name="uq_identity_candidates_pair"),
    Index("ix_identity_candidates_status", "status"),
)

#: Keys (canonical email, profile URL, handle) of authors not in the CRM -> one identity per person.
identity_keys = Table(
    "identity_keys",
    metadata,
    Column("key", String(500), primary_key=True),
    Column("identity_id", String(36), nullable=False),
)

#: Per-source bookmarks (the last committed checkpoint).
bookmarks = Table(
    "bookmarks",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("state", Text, nullable=False),
    Column("run_id", String(36)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Per-sink delivery ledger: which version of which interaction a sink has durably written.
deliveries = Table(
    "deliveries",
    metadata,
    Column("sink", String(200), primary_key=True),
    Column("interaction_id", String(36), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("external_id", Text),
    Column("run_id", String(36)),
    Column("delivered_at", DateTime(timezone=True), nullable=False),
)

#: Rejected input, kept for inspection and replay.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("ref", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("error_type", String(100), nullable=False),
    Column("raw", LargeBinary),
    Column("raw_hash", String(64)),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("run_id", String(36)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Index("ix_quarantine_source_status", "source", "status"),
)

#: Run history.
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("pid", Integer),
    Column("host", String(255)),
    Column("command", Text),
    Column("report", Text),
)


#: Every lookup key of every CRM contact (kind: key, email, domain, host), for
#: identity resolution; derived from the contacts, kept in step by Identities.sync_contact_index.
contact_index = Table(
    "contact_index",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("contact_id", String(36), primary_key=True),
    Index("ix_contact_index_contact_id", "contact_id"),
)

#: People erased with ``crmsync forget``: SHA-256 of each of their keys (``email:...``,
#: ``handle:...``, ``url:...``), never the key itself. Runs skip content by such people.
suppressions = Table(
    "suppressions",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
