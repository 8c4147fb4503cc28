"""Kubernetes roles are bound to a cluster (its issuer and keys); existing roles to "default".

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kubernetes_roles") as batch:
        batch.add_column(
            sa.Column("cluster", sa.String(64), nullable=False, server_default="default")
        )


def downgrade() -> None:
    with op.batch_alter_table("kubernetes_roles") as batch:
        batch.drop_column("cluster")
