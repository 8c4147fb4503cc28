"""Last-known-good secrets, encrypted, shared by every worker and replica (stale reads).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"  # chain: 0003 -> 0006 -> 0004 -> 0005 -> 0007
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "last_known_good",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("version_key", sa.Integer(), primary_key=True),  # 0 = "latest"
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),  # nonce + AES-GCM ciphertext
        sa.Column("stored_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("last_known_good")
