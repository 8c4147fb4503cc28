"""Shutdown releases every connection even when one of its steps fails.

A connection left checked out at shutdown is closed later by the garbage collector, which
turns into a ``ResourceWarning`` in whatever runs next: far from its cause, and an error in
this suite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest
import sqlalchemy

from tests.conftest import RunningServer


def test_a_failing_shutdown_step_still_releases_the_database(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    running: RunningServer = server_factory()
    with running.client() as client:
        # An audited call: the audit appender now holds its connection.
        assert client.get("/v1/auth/tokens/self").status_code == 200
    state = running.state
    engine = state.engine
    assert engine.pool.checkedout() >= 1

    async def broken() -> None:
        raise RuntimeError("feed stop failed")

    monkeypatch.setattr(state.feed, "stop", broken)
    running.stop()
    assert not running.thread.is_alive()
    assert engine.pool.checkedout() == 0
    assert state.audit_log._executor._shutdown


def _closed(raw: Any) -> bool:
    if isinstance(raw, sqlite3.Connection):
        try:
            raw.execute("SELECT 1")
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
            return True
        return False
    return bool(raw.closed)  # psycopg


def test_connections_returned_after_shutdown_are_closed(
    database_url: str, server_factory: Any
) -> None:
    # database_url first: the server stops before the PostgreSQL schema is dropped.
    running: RunningServer = server_factory(database_url)
    engine = running.state.engine
    # Work that outlives shutdown: a thread a cancelled task started, a request past the
    # graceful timeout. One connection was taken before the stop, one is taken after it.
    before = engine.connect()
    before.execute(sqlalchemy.text("SELECT 1"))
    running.stop()
    after = engine.connect()
    after.execute(sqlalchemy.text("SELECT 1"))
    raws = [connection.connection.driver_connection for connection in (before, after)]
    assert not any(_closed(raw) for raw in raws)
    before.close()
    after.close()
    assert all(_closed(raw) for raw in raws), "a connection went back to a pool nobody closes"
    assert engine.pool.checkedout() == 0


def test_shutdown_lets_background_work_finish_and_cancels_only_what_overstays() -> None:
    from secretsd.server.background import BackgroundTasks

    finished: list[str] = []

    async def database_call() -> None:  # a policy reload: a short call in a thread
        await asyncio.to_thread(time.sleep, 0.2)
        finished.append("reload")

    async def stuck() -> None:
        await asyncio.sleep(60)
        finished.append("stuck")

    async def scenario() -> tuple[float, float]:
        tasks = BackgroundTasks()
        tasks.spawn(database_call())
        started = time.monotonic()
        await tasks.finish(timeout=5)
        waited = time.monotonic() - started
        tasks.spawn(stuck())
        started = time.monotonic()
        await tasks.finish(timeout=0.3)
        return waited, time.monotonic() - started

    waited, bounded = asyncio.run(scenario())
    assert finished == ["reload"]  # waited for, not cancelled mid-thread
    assert 0.15 < waited < 5
    assert 0.25 < bounded < 5  # the stuck one was cancelled at the bound
