"""Alembic environment: always run inside the connection ``upgrade_schema`` hands us."""

from __future__ import annotations

from alembic import context

from secretsd.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
