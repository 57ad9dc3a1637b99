"""Shipments (o2r's shipper) and users' encrypted secrets (a Zenodo token per recipient).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("compendium_id", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("deposition_id", sa.Text),
        sa.Column("deposition_url", sa.Text),
        sa.Column("doi", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("last_modified", sa.Double, nullable=False),
    )
    op.create_index("ix_shipments_compendium", "shipments", ["compendium_id", "created", "id"])
    op.create_index("ix_shipments_user", "shipments", ["user_name", "created", "id"])
    op.create_index("ix_shipments_created", "shipments", ["created", "id"])

    op.create_table(
        "user_secrets",
        sa.Column("user_name", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        # the ciphertext (JupyterHub's CryptKeeper, a Fernet token): never a secret in clear
        sa.Column("encrypted", sa.Text, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_secrets")
    op.drop_table("shipments")
