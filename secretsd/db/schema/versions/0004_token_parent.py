"""Tokens remember the token that created them, so revoking a token revokes its children.

Revision ID: 0004
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0006"  # chain: 0003 -> 0006 -> 0004 -> 0005
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("parent_accessor", sa.String(64), nullable=True))
        batch.create_index("ix_tokens_parent_accessor", ["parent_accessor"])


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_parent_accessor")
        batch.drop_column("parent_accessor")
