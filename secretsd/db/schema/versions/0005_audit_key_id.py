"""Audit records name the HMAC key that hashed them (keyed, anchored chain).

Existing records get ``key_id = ''``: their plain sha256 hashes still verify.

Revision ID: 0005
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"  # chain: 0003 -> 0006 -> 0004 -> 0005
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
