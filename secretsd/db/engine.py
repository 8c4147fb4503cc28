"""Engines for SQLite (default, WAL) and PostgreSQL, with one error mapping."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from secretsd.errors import ConfigError, DatabaseUnavailable

__all__ = ["database_errors", "describe_url", "make_engine", "probe_writable", "retire_engine"]


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and its folder created."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            "SECRETSD_DATABASE_URL is not a database URL; write e.g. "
            "postgresql://user@host:5432/db or sqlite:////path/to/secretsd.db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_files(Path(parsed.database))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r} in SECRETSD_DATABASE_URL; "
        "use sqlite or postgresql"
    )


def retire_engine(engine: Engine) -> None:
    """Close every pooled connection now, and each one still in use when it comes back.

    ``dispose()`` alone closes only what sits in the pool. Work that outlives shutdown (a
    thread a cancelled task had started, a request past the graceful timeout) returns its
    connection afterwards, to a pool nobody disposes again; the garbage collector closes it
    at some random later point (a ``ResourceWarning`` far from its cause). Once retired,
    the engine still works, but never keeps a connection.
    """
    if not event.contains(engine, "checkin", _close_on_return):
        event.listen(engine, "checkin", _close_on_return)
    engine.dispose()


def _close_on_return(dbapi_connection: Any, record: Any) -> None:
    if dbapi_connection is not None:
        record.invalidate()


#: Files SQLite (and our lock files) keep beside the database: all as private as it.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", ".audit-lock", ".schema-lock")


def _private_sqlite_files(database: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, often 0644).

    SQLite gives its WAL and shared-memory files the database file's mode, so
    a private database keeps them private; files left 0644 by older versions
    are tightened here.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    # Never open an existing database file here: closing any descriptor of it
    # drops every POSIX lock this process holds on it, including those of live
    # SQLite connections (SQLite would then delete a WAL still in use).
    if not database.exists():
        with contextlib.suppress(OSError):
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn driver connection failures into DatabaseUnavailable naming the database."""
    try:
        yield
    except (OperationalError, DBAPIError) as error:
        if (
            isinstance(error, DBAPIError)
            and not error.connection_invalidated
            and not isinstance(error, OperationalError)
        ):
            raise
        raise DatabaseUnavailable(
            f"secretsd's database {describe_url(str(engine.url))} is unavailable "
            f"({type(error.orig).__name__ if error.orig else 'error'}); retry later"
        ) from None


def probe_writable(engine: Engine, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether a write could start within ``timeout`` seconds (for /readyz and audit recovery).

    ``SELECT 1`` succeeds while another process holds SQLite's write lock, or
    while PostgreSQL's audit head row is locked, yet every audited request
    would then wait. So this takes the write lock the audit writer needs
    (SQLite ``BEGIN IMMEDIATE``; the head row ``FOR UPDATE`` under a
    ``lock_timeout`` on PostgreSQL) and rolls back at once.
    """
    millis = max(1, int(timeout * 1000))
    try:
        with database_errors(engine), engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                raw = connection.connection.driver_connection
                assert raw is not None
                raw.execute(f"PRAGMA busy_timeout={millis}")
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    raw.execute("ROLLBACK")
                finally:
                    raw.execute("PRAGMA busy_timeout=30000")
            else:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {millis}")
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
                connection.exec_driver_sql("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
                connection.rollback()
    except DatabaseUnavailable as error:
        return False, error.message
    except sqlite3.Error as error:
        return False, f"the database cannot be written ({error})"
    return True, "ok"
