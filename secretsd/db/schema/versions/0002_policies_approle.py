"""Policies and AppRole logins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "approle_roles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role_id", sa.String(64), nullable=False, unique=True),
        sa.Column("policies", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("token_ttl", sa.Integer(), nullable=False),
        sa.Column("token_max_ttl", sa.Integer(), nullable=False),
        sa.Column("bound_cidrs", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("secret_id_ttl", sa.Integer(), nullable=True),
        sa.Column("secret_id_num_uses", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "approle_secret_ids",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("secret_id_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("accessor", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("uses_remaining", sa.Integer(), nullable=True),
        sa.Column("bound_cidrs", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("meta", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_approle_secret_ids_role_name", "approle_secret_ids", ["role_name"])


def downgrade() -> None:
    op.drop_index("ix_approle_secret_ids_role_name", "approle_secret_ids")
    op.drop_table("approle_secret_ids")
    op.drop_table("approle_roles")
    op.drop_table("policies")
