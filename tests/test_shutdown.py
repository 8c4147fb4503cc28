"""Shutdown releases every connection even when one of its steps fails.

A connection left checked out at shutdown is closed later by the garbage collector, which
turns into a ``ResourceWarning`` in whatever runs next: far from its cause, and an error in
this suite.
"""

from __future__ import annotations

from typing import Any

import pytest

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
