"""Review links: a candidate readable by whoever has the link (o2r's public links).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_links",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("compendium_id", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("expires", sa.Double),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("revoked", sa.Double),
        sa.Column("uses", sa.Integer, nullable=False),
    )
    op.create_index("ix_review_links_user", "review_links", ["user_name", "created", "id"])
    op.create_index(
        "ix_review_links_compendium", "review_links", ["compendium_id", "created", "id"]
    )


def downgrade() -> None:
    op.drop_table("review_links")
