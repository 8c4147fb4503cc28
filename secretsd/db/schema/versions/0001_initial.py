"""Initial schema: tokens, audit log with its chain head, change feed, instance state.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("accessor", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("policies", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("login_method", sa.String(32), nullable=False, server_default="token"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("max_expires_at", sa.Float(), nullable=True),
        sa.Column("ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("renewable", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("meta", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("identity", sa.String(64), nullable=False, server_default=""),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("method", sa.String(32), nullable=False, server_default=""),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("path", sa.String(600), nullable=False, server_default=""),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.String(300), nullable=False, server_default=""),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_time", "audit_log", ["time"])
    op.create_index("ix_audit_path", "audit_log", ["path"])
    op.create_index("ix_audit_identity", "audit_log", ["identity"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])
    op.create_table(
        "change_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_change_events_created", "change_events", ["created_at"])
    op.create_table(
        "instance_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("instance_state")
    op.drop_index("ix_change_events_created", "change_events")
    op.drop_table("change_events")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_identity", "audit_log")
    op.drop_index("ix_audit_path", "audit_log")
    op.drop_index("ix_audit_time", "audit_log")
    op.drop_table("audit_log")
    op.drop_table("tokens")
