"""The first schema: compendia, jobs, and the full-text index of compendia.

SQLite keeps the search words in the FTS5 table ``compendia_fts`` (its rowid is the compendium's
``seq``); PostgreSQL in the weighted tsvector column ``compendia.search`` with a GIN index.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "compendia",
        # INTEGER PRIMARY KEY is SQLite's rowid, which the FTS5 rows point at; VACUUM keeps it
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("candidate", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("doi", sa.Text),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        *([sa.Column("search", postgresql.TSVECTOR, nullable=False)] if postgres else []),
    )
    op.create_index("ix_compendia_listing", "compendia", ["candidate", "created", "id"])
    op.create_index("ix_compendia_user", "compendia", ["user_name", "candidate", "created", "id"])
    op.create_index("ix_compendia_doi", "compendia", ["doi"])
    if postgres:
        op.create_index("ix_compendia_search", "compendia", ["search"], postgresql_using="gin")
    else:
        # prefix='2 3': short prefixes (the common case while typing) read a prefix index
        op.execute(
            "CREATE VIRTUAL TABLE compendia_fts USING fts5("
            "title, authors, keywords, description, files, tokenize='unicode61', prefix='2 3')"
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("compendium_id", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("started", sa.Double),
        sa.Column("finished", sa.Double),
        sa.Column("worker", sa.Text),
        sa.Column("heartbeat", sa.Double),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_jobs_status", "jobs", ["status", "created", "id"])
    op.create_index("ix_jobs_compendium", "jobs", ["compendium_id", "created", "id"])
    op.create_index("ix_jobs_user", "jobs", ["user_name", "created", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created", "id"])


def downgrade() -> None:
    op.drop_table("jobs")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE compendia_fts")
    op.drop_table("compendia")
