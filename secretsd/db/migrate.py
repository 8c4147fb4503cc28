"""Bring the schema up to date with Alembic, safely from several replicas at once.

Every replica runs this at start. A PostgreSQL advisory lock (or, for
SQLite, an exclusive lock file next to the database) makes the replicas take
turns, so two of them never race to create the same table.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from secretsd.db.engine import database_errors

__all__ = ["upgrade_schema"]

_ADVISORY_LOCK_ID = 0x5EC12E75D


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "schema"))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".schema-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_schema(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    with database_errors(engine):
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
                connection.commit()
                try:
                    with connection.begin():
                        command.upgrade(_alembic_config(connection), "head")
                finally:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID}
                    )
                    connection.commit()
        else:
            with _sqlite_lock(engine), engine.begin() as connection:
                command.upgrade(_alembic_config(connection), "head")
