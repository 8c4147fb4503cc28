"""The SDK reports the versions it holds: batched, throttled, withdrawn on close, never in the way."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretsd.client import AsyncClient, Client
from secretsd.client._held import HeldVersions
from tests.conftest import ADMIN_TOKEN, RunningServer, secretsd_executable


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    running: RunningServer = server_factory(max_wait=1.0)
    return running


def rows_of(admin: httpx.Client, path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.get(f"/v1/consumers/{path}").json()["consumers"]
    return found


def wait_for_rows(admin: httpx.Client, path: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    rows = rows_of(admin, path)
    while len(rows) != count and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = rows_of(admin, path)
    return rows


def report_requests(admin: httpx.Client) -> set[str]:
    """The requests that carried a report (each audits the report and its paths' reads)."""
    records = admin.get("/v1/audit", params={"action": "consumer-report"}).json()["records"]
    return {r["request_id"] for r in records}


# -- the ledger: throttling and batching, with an explicit clock --------------------


def test_ledger_reports_news_at_once_then_throttles_and_heartbeats() -> None:
    held = HeldVersions(min_interval=1.0, heartbeat=60.0)
    assert held.wait_time(0.0) == float("inf")  # nothing held, nothing to say
    assert held.note("apps/a", 1) is True
    assert held.note("apps/a", 1) is False  # the same version again is not news
    assert held.wait_time(0.0) == 0.0
    [batch] = held.take(0.0)
    assert batch.versions == {"apps/a": 1}
    held.sent()
    # News right after a report waits for the interval, and goes out together.
    assert held.note("apps/a", 2) and held.note("apps/b", 7)
    assert held.take(0.5) == []
    assert held.wait_time(0.5) == pytest.approx(0.5)
    [batch] = held.take(1.0)
    assert batch.versions == {"apps/a": 2, "apps/b": 7}
    held.sent()
    assert held.note("apps/a", 1) is False  # a late, older answer changes nothing
    # Quiet: the next report is the heartbeat, with everything held.
    assert held.take(30.0) == []
    assert held.wait_time(30.0) == pytest.approx(30.0)
    [beat] = held.take(60.0)
    assert beat.versions == {"apps/a": 2, "apps/b": 7}


def test_ledger_retries_failures_with_backoff_batches_and_releases() -> None:
    held = HeldVersions(min_interval=1.0, heartbeat=60.0)
    for i in range(1200):
        held.note(f"apps/p{i:04d}", 1)
    batches = held.take(0.0)
    assert [len(b.versions) for b in batches] == [500, 500, 200]  # the service's cap
    for batch in batches:
        held.failed(batch)
    assert held.take(1.5) == []  # one failure: wait 2 s, not 1
    assert sum(len(b.versions) for b in held.take(2.0)) == 1200
    held.failed(batch)
    assert held.wait_time(2.0) == pytest.approx(4.0)  # two failures: 4 s
    released = held.release()
    assert [len(b.released) for b in released] == [500, 500, 200]
    assert all(not b.versions for b in released)
    assert held.note("apps/x", 1) is False  # after release (close) nothing is noted


# -- against the real service --------------------------------------------------------


def test_sdk_reports_what_it_read_once_per_version_and_withdraws_on_close(
    database_url: str, server_factory: Any
) -> None:
    # database_url first: the server stops before the PostgreSQL schema is dropped.
    server: RunningServer = server_factory(database_url, max_wait=1.0)  # SQLite and PostgreSQL
    with server.client() as admin:
        reports_and_withdraws(server, admin)


def reports_and_withdraws(server: RunningServer, admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/sdk", json={"data": {"k": "sdk-held-value-1"}})
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, cache_ttl=0) as client:
        for _ in range(30):
            assert client.get("secretsd://apps/sdk#k") == "sdk-held-value-1"
        [row] = wait_for_rows(admin, "apps/sdk", 1)
        assert row["consumer"] == f"host/{socket.gethostname()}/{os.getpid()}"
        assert (row["kind"], row["version"], row["live"]) == ("sdk", 1, True)
        assert row["identity"]  # from the token, not claimed by the client
        # Thirty reads of one version: one report (the rest waits for the heartbeat).
        assert len(report_requests(admin)) == 1
        admin.put("/v1/secrets/apps/sdk", json={"data": {"k": "sdk-held-value-2"}})
        assert client.get_map("apps/sdk") == {"k": "sdk-held-value-2"}
        deadline = time.monotonic() + 15
        while rows_of(admin, "apps/sdk")[0]["version"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows_of(admin, "apps/sdk")[0]["version"] == 2
        # A pinned read is not "holding" an old version.
        assert client.read("apps/sdk", version=1).version == 1
        assert client.resolve(["secretsd://apps/sdk?version=1#k"])[0].version == 1
        time.sleep(1.2)
        assert [r["version"] for r in rows_of(admin, "apps/sdk")] == [2]
    # Closed: the process no longer holds anything, so nobody waits for it.
    assert rows_of(admin, "apps/sdk") == []


def test_rotate_wait_waits_for_an_sdk_reader_and_names_a_stuck_one(
    server: RunningServer, admin: httpx.Client, cli: Any
) -> None:
    admin.put("/v1/secrets/apps/sdkrot", json={"data": {"k": "sdk-rotate-1"}})
    reading = threading.Event()
    reading.set()
    done = threading.Event()
    client = Client(server.url, ADMIN_TOKEN, auto_renew=False, consumer="host/app-1/42")

    def reader() -> None:
        while not done.is_set():
            if reading.is_set():
                client.get("secretsd://apps/sdkrot#k")
            time.sleep(0.05)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        [row] = wait_for_rows(admin, "apps/sdkrot", 1)
        assert (row["consumer"], row["version"]) == ("host/app-1/42", 1)
        result = json.loads(
            cli("rotate", "apps/sdkrot", "k=sdk-rotate-2", "--wait", "--json").stdout
        )
        assert result == {"path": "apps/sdkrot", "version": 2, "laggards": []}
        assert [r["version"] for r in rows_of(admin, "apps/sdkrot")] == [2]
        # The application stops reading: it still holds version 2, and rotate says so.
        reading.clear()
        time.sleep(0.2)
        failed = cli(
            "rotate", "apps/sdkrot", "k=sdk-rotate-3", "--wait", "--timeout", "1.5", check=6
        )
        message = failed.stderr.decode()
        assert "still hold an older version: host/app-1/42 (v2)" in message
        assert "sdk-rotate-3" not in message
    finally:
        done.set()
        thread.join(10)
        client.close()
    # Closed: rotate --wait has nobody left to wait for.
    result = json.loads(cli("rotate", "apps/sdkrot", "k=sdk-rotate-4", "--wait", "--json").stdout)
    assert result["laggards"] == []


def test_reporting_off_and_failing_reports_never_touch_reads(
    server: RunningServer, admin: httpx.Client, cli: Any
) -> None:
    admin.put("/v1/secrets/apps/quiet", json={"data": {"k": "quiet-value"}})
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, report_versions=False) as off:
        assert off.get("secretsd://apps/quiet#k") == "quiet-value"
    env = {"SECRETSD_REPORT_VERSIONS": "false"}
    from secretsd.client import load_client_settings

    settings = load_client_settings(server.url, ADMIN_TOKEN, env=env, use_login_file=False)
    with Client(settings=settings, auto_renew=False) as off:
        assert off.get("secretsd://apps/quiet#k") == "quiet-value"
    # One-shot CLI reads do not report (see open_client).
    assert cli("get", "secretsd://apps/quiet#k").stdout == b"quiet-value"
    # The service refuses this client's reports (a name it rejects): reads go on.
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, consumer="not a name") as bad:
        for _ in range(3):
            assert bad.get("secretsd://apps/quiet#k") == "quiet-value"
            time.sleep(0.4)
    assert rows_of(admin, "apps/quiet") == []
    assert cli("get", "secretsd://apps/quiet#k", env={"SECRETSD_REPORT_VERSIONS": "maybe"}, check=2)


def test_async_client_reports_and_withdraws(server: RunningServer, admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/async", json={"data": {"k": "async-held-value"}})

    async def scenario() -> list[dict[str, Any]]:
        async with AsyncClient(
            server.url, ADMIN_TOKEN, auto_renew=False, consumer="host/async/1"
        ) as client:
            assert await client.get("secretsd://apps/async#k") == "async-held-value"
            deadline = time.monotonic() + 15
            rows = rows_of(admin, "apps/async")
            while not rows and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                rows = rows_of(admin, "apps/async")
            return rows

    rows = asyncio.run(scenario())
    assert [(r["consumer"], r["kind"], r["version"]) for r in rows] == [("host/async/1", "sdk", 1)]
    assert rows_of(admin, "apps/async") == []


def test_secretsd_run_reports_while_the_command_runs(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    admin.put("/v1/secrets/apps/runner", json={"data": {"k": "run-held-value"}})
    marker = tmp_path / "stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=ADMIN_TOKEN,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        APP_VALUE="secretsd://apps/runner#k",
    )
    waiter = f"import os,time\nwhile not os.path.exists({str(marker)!r}): time.sleep(0.05)"
    process = subprocess.Popen(
        [secretsd_executable(), "run", "--", sys.executable, "-c", waiter], env=env
    )
    try:
        [row] = wait_for_rows(admin, "apps/runner", 1)
        assert row["consumer"] == f"host/{socket.gethostname()}/{process.pid}"
        assert (row["kind"], row["version"]) == ("sdk", 1)
    finally:
        marker.write_text("")
        assert process.wait(30) == 0
    assert rows_of(admin, "apps/runner") == []


def test_a_client_dropped_without_close_ends_its_report_thread(
    server: RunningServer, admin: httpx.Client
) -> None:
    import gc

    admin.put("/v1/secrets/apps/dropped", json={"data": {"k": "dropped-value"}})
    client = Client(server.url, ADMIN_TOKEN, auto_renew=False, consumer="host/dropped/1")
    assert client.get("secretsd://apps/dropped#k") == "dropped-value"
    wait_for_rows(admin, "apps/dropped", 1)
    reporter = client._reporter
    assert reporter is not None and reporter._thread is not None
    thread = reporter._thread
    assert thread.is_alive()
    client._http.close()  # only its sockets (unclosed ones warn when collected), not the client
    del client, reporter
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
