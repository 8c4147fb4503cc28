"""Consumer versions: which version of each secret every agent / SDK process holds.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_versions",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
    )
    op.create_index("ix_consumer_versions_path", "consumer_versions", ["path"])


def downgrade() -> None:
    op.drop_index("ix_consumer_versions_path", "consumer_versions")
    op.drop_table("consumer_versions")
