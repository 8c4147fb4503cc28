"""The supervisor's health check notices a worker that dies mid-ping at once.

uvicorn's ``Process.is_alive`` pings over a pipe whose both ends the
supervisor holds, so a worker killed between the liveness test and the ping
costs the whole 5 s timeout before it is restarted (CI saw a 5.08 s restart
gap for a worker SIGKILLed once). ``answers`` also waits on the process
sentinel.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any, cast

from secretsd.server.workers import answers

_spawn = multiprocessing.get_context("spawn")


def _pong_forever(conn: Connection) -> None:
    while True:
        conn.recv()
        conn.send(True)


def _never_answer(conn: Connection) -> None:
    time.sleep(60)


def _worker(target: Any) -> Any:
    parent_conn, child_conn = _spawn.Pipe()
    process = _spawn.Process(target=target, args=(child_conn,), daemon=True)
    process.start()
    return SimpleNamespace(process=process, parent_conn=parent_conn, child_conn=child_conn)


def test_a_healthy_worker_answers() -> None:
    worker = _worker(_pong_forever)
    try:
        assert answers(cast(Any, worker), timeout=5)
        assert answers(cast(Any, worker), timeout=5)  # and again: one pong per ping
    finally:
        worker.process.kill()
        worker.process.join()
    assert not answers(cast(Any, worker), timeout=5)  # a dead one does not


def test_a_worker_killed_while_being_pinged_is_noticed_at_once() -> None:
    worker = _worker(_never_answer)  # alive, but its answer never comes
    pid = worker.process.pid
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    started = time.monotonic()
    assert not answers(cast(Any, worker), timeout=5)
    took = time.monotonic() - started
    worker.process.join()
    assert took < 2.5, f"noticed only after {took:.2f} s (uvicorn's check waits the full 5 s)"


def test_a_hung_worker_is_reported_after_the_timeout() -> None:
    worker = _worker(_never_answer)
    try:
        started = time.monotonic()
        assert not answers(cast(Any, worker), timeout=0.5)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        worker.process.kill()
        worker.process.join()
