"""Whole processes: the embedded default, restarts, crashes, replicas, the CLI boundary."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    CANARY,
    Bao,
    free_port,
    secretsd_executable,
    self_signed_certificate,
    stop_process,
)

pytestmark = pytest.mark.slow


def serve(tmp_path: Path, name: str, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    full_env.update({"SECRETSD_BOOTSTRAP_TOKEN": ADMIN_TOKEN, "SECRETSD_LOG_LEVEL": "warning"})
    full_env.update(env)
    with (tmp_path / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [secretsd_executable(), "serve", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        )


def wait_ready(url: str, process: subprocess.Popen[str], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"secretsd exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"secretsd not ready:\n{log.read_text()}")


def admin(url: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )


def bao_pids(data_dir: Path) -> list[int]:
    result = subprocess.run(
        ["pgrep", "-f", str(data_dir / "openbao" / "openbao.hcl")], capture_output=True, text=True
    )
    return [int(p) for p in result.stdout.split()]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop_process(process, timeout=20)
    for log in tmp_path.glob("*.log"):
        CANARY.note_file(log)


def test_embedded_default_restarts_and_keeps_secrets(tmp_path: Path, processes: list[Any]) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = serve(tmp_path, "first", port, "--data-dir", str(data_dir), "--workers", "1")
    processes.append(first)
    wait_ready(url, first, tmp_path / "first.log")
    output = (tmp_path / "first.log").read_text()
    assert "Admin token:" in output and str(data_dir / "admin-token") in output
    assert "export SECRETSD_ADDR=" in output
    with admin(url) as client:
        assert client.put("/v1/secrets/apps/db", json={"data": {"pw": "kept"}}).status_code == 200

    # Key material and the admin token are private files.
    for name in ("admin-token", "openbao/seal.key", "openbao/role-id", "openbao/secret-id"):
        mode = stat.S_IMODE((data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE((data_dir / "openbao").stat().st_mode) == 0o700
    assert (data_dir / "admin-token").read_text().strip() == ADMIN_TOKEN
    assert "initialize" not in (data_dir / "openbao" / "openbao.hcl").read_text()

    assert len(bao_pids(data_dir)) == 1
    first.send_signal(signal.SIGTERM)
    first.wait(30)
    assert bao_pids(data_dir) == []  # stopping secretsd stops OpenBao

    second = serve(tmp_path, "second", port, "--data-dir", str(data_dir), "--workers", "1")
    processes.append(second)
    started = time.monotonic()
    wait_ready(url, second, tmp_path / "second.log")
    assert time.monotonic() - started < 20
    with admin(url) as client:
        assert client.get("/v1/secrets/apps/db").json()["data"] == {"pw": "kept"}

    # A crashed OpenBao is noticed (not ready) and restarted.
    (pid,) = bao_pids(data_dir)
    os.kill(pid, signal.SIGKILL)
    saw_unready = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/readyz", timeout=5).status_code
        saw_unready |= status == 503
        if saw_unready and status == 200:
            break
        time.sleep(0.05)
    assert saw_unready
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    with admin(url) as client:
        assert client.get("/v1/secrets/apps/db").json()["data"] == {"pw": "kept"}
    assert bao_pids(data_dir) != [pid]


def test_two_replicas_share_one_database_and_vault(
    tmp_path: Path, bao: Bao, vault_prefix: str, database_url: str, processes: list[Any]
) -> None:
    common = {
        "SECRETSD_VAULT_ADDR": bao.addr,
        "SECRETSD_VAULT_TOKEN": bao.root_token,
        "SECRETSD_VAULT_PREFIX": vault_prefix,
        "SECRETSD_DATABASE_URL": database_url,
        "SECRETSD_CACHE_TTL": "30",
    }
    port_a, port_b = free_port(), free_port()
    a = serve(tmp_path, "a", port_a, "--data-dir", str(tmp_path / "a"), "--workers", "2", **common)
    b = serve(tmp_path, "b", port_b, "--data-dir", str(tmp_path / "b"), "--workers", "1", **common)
    processes.extend([a, b])
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    wait_ready(url_a, a, tmp_path / "a.log")
    wait_ready(url_b, b, tmp_path / "b.log")
    with admin(url_a) as via_a, admin(url_b) as via_b:
        assert via_a.put("/v1/secrets/shared", json={"data": {"k": "1"}}).json()["version"] == 1
        assert via_b.get("/v1/secrets/shared").json()["data"] == {"k": "1"}
        via_b.put("/v1/secrets/shared", json={"data": {"k": "2"}})
        # Both workers of replica a must drop their cached copy within a poll interval.
        time.sleep(0.5)
        for _ in range(10):
            assert via_a.get("/v1/secrets/shared").json()["data"] == {"k": "2"}
        metrics = httpx.get(f"{url_a}/metrics").text
        assert 'route="/v1/secrets/{path:path}"' in metrics
    # Only one of the replicas created the admin token.
    assert sum((tmp_path / d / "admin-token").exists() for d in ("a", "b")) == 1


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    full_env.update(env)
    return subprocess.run(
        [secretsd_executable(), *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    bad = run_cli("config", "show", SECRETSD_PORT="eighty")
    assert bad.returncode == 2
    assert bad.stderr.startswith("Error: invalid configuration")
    assert "Traceback" not in bad.stderr
    missing = run_cli("config", "show", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr

    shown = run_cli("config", "show", "--json", SECRETSD_VAULT_TOKEN="s.very-secret-token")
    assert shown.returncode == 0
    assert "very-secret" not in shown.stdout
    assert '"vault_token": "********"' in shown.stdout

    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
            "--workers",
            "1",
            SECRETSD_VAULT_ADDR="http://127.0.0.1:1",
            SECRETSD_VAULT_TOKEN="x",
            SECRETSD_VAULT_TIMEOUT="1",
        )
    assert busy.returncode == 6  # Vault unreachable is checked first, clearly
    assert "Error: Vault at http://127.0.0.1:1 is unreachable" in busy.stderr
    assert "Traceback" not in busy.stderr


@pytest.mark.postgres
def test_replicas_under_load_keep_one_audit_chain(
    tmp_path: Path, bao: Bao, vault_prefix: str, processes: list[Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from secretsd.audit import verify_chain
    from secretsd.audit_anchor import load_audit_key, read_checkpoints
    from secretsd.db.engine import make_engine
    from tests.conftest import postgres_schema_url

    with postgres_schema_url() as database_url:
        common = {
            "SECRETSD_VAULT_ADDR": bao.addr,
            "SECRETSD_VAULT_TOKEN": bao.root_token,
            "SECRETSD_VAULT_PREFIX": vault_prefix,
            "SECRETSD_DATABASE_URL": database_url,
        }
        urls = []
        for name in ("a", "b"):
            port = free_port()
            process = serve(
                tmp_path, name, port, "--data-dir", str(tmp_path / name), "--workers", "2", **common
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            wait_ready(urls[-1], process, tmp_path / f"{name}.log")
        with admin(urls[0]) as client:
            for i in range(10):
                client.put(f"/v1/secrets/load/s{i}", json={"data": {"k": str(i)}})

        def hammer(worker: int) -> int:
            done = 0
            with admin(urls[worker % 2]) as client:
                for i in range(60):
                    response = client.get(f"/v1/secrets/load/s{(worker + i) % 10}")
                    assert response.status_code == 200
                    done += 1
            return done

        with ThreadPoolExecutor(8) as pool:
            total = sum(pool.map(hammer, range(8)))
        assert total == 480
        for process in processes:  # stopped, so their last checkpoints are written
            stop_process(process, timeout=20)
        processes.clear()
        # Each replica keyed its records with its own data dir's key: verify needs both.
        keys = [load_audit_key(tmp_path / name / "audit.key") for name in ("a", "b")]
        checkpoints = [
            c
            for name in ("a", "b")
            for c in read_checkpoints(tmp_path / name / "audit-checkpoints.jsonl")[0]
        ]
        assert checkpoints
        engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            checked, problem = verify_chain(engine, keys=keys, checkpoints=checkpoints)
        finally:
            engine.dispose()
        assert problem is None
        assert checked >= 480 + 20


def test_tls_listener_and_refusal_of_plain_http_off_loopback(
    tmp_path: Path, bao: Bao, vault_prefix: str, processes: list[Any]
) -> None:
    cert_file, key_file = self_signed_certificate(tmp_path)
    common = {
        "SECRETSD_VAULT_ADDR": bao.addr,
        "SECRETSD_VAULT_TOKEN": bao.root_token,
        "SECRETSD_VAULT_PREFIX": vault_prefix,
    }
    refused = run_cli(
        "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "r"), "--workers", "1", **common
    )
    assert refused.returncode == 2
    assert "refusing to serve secrets over plain HTTP on 0.0.0.0" in refused.stderr

    port = free_port()
    process = serve(
        tmp_path,
        "tls",
        port,
        "--data-dir",
        str(tmp_path / "tls"),
        "--workers",
        "1",
        SECRETSD_TLS_CERT_FILE=str(cert_file),
        SECRETSD_TLS_KEY_FILE=str(key_file),
        **common,
    )
    processes.append(process)
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert_file))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", verify=trust, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    assert "serving on https://127.0.0.1" in (tmp_path / "tls.log").read_text()
    with httpx.Client(base_url=url, verify=trust,
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:  # fmt: skip
        assert client.put("/v1/secrets/t", json={"data": {"k": "tls-only"}}).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
