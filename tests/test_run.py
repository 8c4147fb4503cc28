"""``secretsd run``: real processes, the real service, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from secretsd.client import Client
from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer, secretsd_executable
from tests.test_sdk import Counting

PY = sys.executable


def env_for(server: RunningServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(SECRETSD_ADDR=server.url, SECRETSD_TOKEN=ADMIN_TOKEN)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(extra)
    return env


def secretsd_run(
    server: RunningServer, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [secretsd_executable(), "run", *args],
        capture_output=True,
        env=env or env_for(server, tmp_path),
        timeout=60,
    )
    # The canary (tests/conftest.py) checks that run never prints a value.
    CANARY.texts.append(("stderr of secretsd run", result.stderr.decode(errors="replace")))
    return result


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    # A stopping test server waits for open long-polls; the service's cap keeps them short.
    running: RunningServer = server_factory(max_wait=1.0)
    return running


@pytest.fixture
def sdk(server: RunningServer) -> Any:
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, transport=Counting()) as client:
        yield client


SHOW_ENV = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))"


def test_values_reach_the_command_from_flags_files_and_the_environment(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/web/db", {"password": "pw-synthetic", "user": "web"})
    sdk.put("apps/web/api", {"key": "api-synthetic"})
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# references and plain values mix\n"
        "DB_USER=secretsd://apps/web/db#user\n"
        "export MODE='production'\n"
    )
    names = ["DB_PASSWORD", "DB_USER", "MODE", "API_KEY", "FROM_ENV", "SECRETSD_ENV_API_KEY"]
    env = env_for(
        server,
        tmp_path,
        FROM_ENV="secretsd://apps/web/db#password",
        SECRETSD_ENV_API_KEY="secretsd://apps/web/api#key",
    )
    result = secretsd_run(
        server,
        tmp_path,
        "--env",
        "DB_PASSWORD=secretsd://apps/web/db#password",
        "--env-file",
        str(env_file),
        "--",
        PY,
        "-c",
        SHOW_ENV % names,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {
        "DB_PASSWORD": "pw-synthetic",
        "DB_USER": "web",
        "MODE": "production",
        "API_KEY": "api-synthetic",
        "FROM_ENV": "pw-synthetic",
        "SECRETSD_ENV_API_KEY": None,
    }


def test_exit_codes_pass_through(server: RunningServer, tmp_path: Path) -> None:
    assert secretsd_run(server, tmp_path, "--", PY, "-c", "raise SystemExit(7)").returncode == 7
    killed = secretsd_run(
        server, tmp_path, "--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert killed.returncode == 128 + signal.SIGKILL
    # Options after the command belong to the command (no '--' needed).
    assert secretsd_run(server, tmp_path, PY, "-c", "raise SystemExit(3)").returncode == 3


def test_bad_input_fails_before_starting_anything(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    touch = ["--", PY, "-c", f"open({str(marker)!r}, 'w')"]
    cases = [
        (["--env", "X=secretsd://apps//db#k"], 2, b"segment 2 is empty"),
        (["--env", "X=secretsd://apps/web/db"], 2, b"names a whole secret"),
        (["--env", "X=secretsd://apps/missing#k"], 3, b"Error: "),
        (["--env", "not a name=1"], 2, b"--env takes NAME="),
        (["--signal", "HUP"], 2, b"add --watch"),
    ]
    for args, code, message in cases:
        result = secretsd_run(server, tmp_path, *args, *touch)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr
        assert not marker.exists()
    missing = secretsd_run(server, tmp_path, "--", "no-such-command-xyz")
    assert missing.returncode == 2 and b"command not found" in missing.stderr
    sdk.put("apps/nul", {"raw": b"a\0b\xff"})
    nul = secretsd_run(server, tmp_path, "--env", "RAW=secretsd://apps/nul#raw", *touch)
    assert nul.returncode == 2 and b"NUL byte" in nul.stderr


def test_binary_values_arrive_as_their_bytes(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/bin", {"raw": b"\xff\xfe-bytes"})
    result = secretsd_run(
        server,
        tmp_path,
        "--env",
        "RAW=secretsd://apps/bin#raw",
        "--",
        PY,
        "-c",
        "import os, sys; sys.stdout.buffer.write(os.environb[b'RAW'])",
    )
    assert result.stdout == b"\xff\xfe-bytes"


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return path


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_signals_are_forwarded(server: RunningServer, tmp_path: Path) -> None:
    log = tmp_path / "signals.log"
    child = _script(
        tmp_path,
        f"""
        import signal, sys, time
        log = open({str(log)!r}, "a", buffering=1)
        def note(signum, frame):
            log.write(signal.Signals(signum).name + "\\n")
            if signum == signal.SIGTERM:
                sys.exit(42)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, note)
        log.write("ready\\n")
        while True:
            time.sleep(0.05)
        """,
    )
    process = subprocess.Popen(
        [secretsd_executable(), "run", "--", PY, str(child)],
        env=env_for(server, tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: log.exists() and "ready" in log.read_text())
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
            process.send_signal(sig)
            _wait_for(lambda sig=sig: sig.name in log.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 42
        assert log.read_text().split() == ["ready", "SIGHUP", "SIGINT", "SIGUSR1", "SIGTERM"]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _watching(
    server: RunningServer, tmp_path: Path, child: Path, *options: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            secretsd_executable(),
            "run",
            "--watch",
            *options,
            "--env",
            "PASSWORD=secretsd://apps/web/db#password",
            "--",
            PY,
            str(child),
        ],
        env=env_for(server, tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_watch_restarts_the_command_when_a_secret_changes(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/web/db", {"password": "first-synthetic"})
    log = tmp_path / "starts.log"
    child = _script(
        tmp_path,
        f"""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with open({str(log)!r}, "a") as log:
            log.write(os.environ["PASSWORD"] + "\\n")
        while True:
            time.sleep(0.05)
        """,
    )
    process = _watching(server, tmp_path, child)
    try:
        _wait_for(lambda: log.exists() and log.read_text() == "first-synthetic\n")
        time.sleep(0.3)  # the long-poll is in flight
        started = time.monotonic()
        sdk.put("apps/web/db", {"password": "second-synthetic"})
        _wait_for(lambda: log.read_text().split() == ["first-synthetic", "second-synthetic"])
        assert time.monotonic() - started < 3
        # A write that changes nothing the command uses does not restart it.
        sdk.put("apps/web/db", {"password": "second-synthetic", "unused": "x"})
        time.sleep(0.5)
        assert log.read_text().split() == ["first-synthetic", "second-synthetic"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate()
    CANARY.texts.append(("stderr of secretsd run --watch", stderr.decode(errors="replace")))
    assert b"restarting" in stderr
    assert b"synthetic" not in stderr, "run must never print a value"


def test_watch_can_signal_instead_of_restarting(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/web/db", {"password": "one-synthetic"})
    log = tmp_path / "hups.log"
    child = _script(
        tmp_path,
        f"""
        import os, signal, sys, time
        log = open({str(log)!r}, "a", buffering=1)
        signal.signal(signal.SIGHUP, lambda *_: log.write("HUP\\n"))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        log.write("start\\n")
        while True:
            time.sleep(0.05)
        """,
    )
    process = _watching(server, tmp_path, child, "--signal", "HUP")
    try:
        _wait_for(lambda: log.exists() and "start" in log.read_text())
        time.sleep(0.3)
        sdk.put("apps/web/db", {"password": "two-synthetic"})
        _wait_for(lambda: log.read_text().split() == ["start", "HUP"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
