"""``secretsd doctor`` as a real process against real data dirs, a real server and OpenBao."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Bao, RunningServer, secretsd_executable


def doctor(*args: str, **env: str) -> tuple[int, dict[str, Any]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    environment.update(env)
    result = subprocess.run(
        [secretsd_executable(), "doctor", "--json", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def statuses(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["check"], set()).add(finding["status"])
    return found


def private_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("secretsd.db", "admin-token", "audit.key"):
        (data / name).write_text("x")
        (data / name).chmod(0o600)
    return data


def test_a_private_loopback_deployment_passes(tmp_path: Path) -> None:
    code, report = doctor("--data-dir", str(private_data_dir(tmp_path)), "--offline")
    assert code == 0, report
    assert report["ok"] is True
    assert all(f["status"] == "ok" for f in report["findings"])


def test_world_readable_files_and_folders_are_problems(tmp_path: Path) -> None:
    data = private_data_dir(tmp_path)
    data.chmod(0o755)
    (data / "secretsd.db").chmod(0o644)
    (data / "secretsd.db-wal").write_text("")
    (data / "secretsd.db-wal").chmod(0o644)
    code, report = doctor("--data-dir", str(data), "--offline")
    assert code == 1 and report["ok"] is False
    details = " ".join(f["detail"] for f in report["findings"] if f["status"] == "fail")
    assert "secretsd.db (0o644)" in details and "secretsd.db-wal (0o644)" in details
    assert f"{data} is 0o755" in details


def test_insecure_transport_and_secrets_in_the_environment(tmp_path: Path) -> None:
    data = private_data_dir(tmp_path)
    code, report = doctor(
        "--data-dir",
        str(data),
        "--offline",
        SECRETSD_HOST="0.0.0.0",
        SECRETSD_ALLOW_INSECURE_HTTP="true",
        SECRETSD_VAULT_ADDR="http://10.20.30.40:8200",
        SECRETSD_VAULT_TOKEN="s.in-the-environment",
    )
    assert code == 1
    found = statuses(report)
    assert found["listener"] == {"warn"}
    assert found["vault-transport"] == {"fail"}
    assert found["secrets-in-env"] == {"warn"}
    assert "s.in-the-environment" not in json.dumps(report)


def test_a_dev_mode_vault_and_a_running_server_are_checked(
    tmp_path: Path, bao: Bao, server: RunningServer
) -> None:
    (tmp_path / "d").mkdir()
    data = private_data_dir(tmp_path / "d")
    code, report = doctor(
        "--data-dir", str(data), "--addr", server.url, SECRETSD_VAULT_ADDR=bao.addr
    )
    found = statuses(report)
    assert found["vault-mode"] == {"fail"}  # the test OpenBao runs with -dev: in-memory
    assert found["server"] == {"ok"}
    assert code == 1


def test_a_config_file_with_secrets_must_be_private(tmp_path: Path) -> None:
    data = private_data_dir(tmp_path)
    config = tmp_path / "secretsd.toml"
    config.write_text('vault_addr = "https://vault.example:8200"\nvault_token = "s.abc"\n')
    config.chmod(0o644)
    code, report = doctor("--data-dir", str(data), "--offline", "--config", str(config))
    assert code == 1 and statuses(report)["config-file"] == {"fail"}
    config.chmod(0o600)
    code, report = doctor("--data-dir", str(data), "--offline", "--config", str(config))
    assert code == 0, report
