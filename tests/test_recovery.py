"""Break-glass recovery: every admin token gone, an operator on the server host gets back in."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx

from tests.conftest import CANARY, RunningServer, secretsd_executable


def recover(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    full_env.update(env)
    return subprocess.run(
        [secretsd_executable(), "recover-admin", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_break_glass_after_the_last_admin_is_revoked(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    admin.put("/v1/secrets/apps/db", json={"data": {"k": "v"}})
    assert admin.post("/v1/auth/tokens/revoke-self").status_code == 204
    assert admin.get("/v1/auth/tokens").status_code == 401  # locked out

    data_dir = server.settings.data_dir
    done = recover(
        "--data-dir",
        str(data_dir),
        "--reason",
        "last admin revoked",
        SECRETSD_DATABASE_URL=server.settings.sqlalchemy_url,
    )
    assert done.returncode == 0, done.stderr
    token_file = data_dir / "recovery-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    CANARY.remember(token)
    assert token not in done.stdout + done.stderr
    with server.client(token) as rescued:
        me = rescued.get("/v1/auth/tokens/self").json()
        assert me["policies"] == ["admin"] and me["method"] == "break-glass"
        assert me["renewable"] is False and 3500 < me["ttl"] <= 3600
        bounded = rescued.post("/v1/auth/tokens", json={"policies": ["admin"], "ttl": 0})
        assert bounded.json()["expires_at"] is not None  # would die with the recovery token
        lasting = rescued.post(
            "/v1/auth/tokens", json={"policies": ["admin"], "ttl": 0, "orphan": True}
        )
        assert lasting.status_code == 200 and lasting.json()["expires_at"] is None
        records = rescued.get("/v1/audit", params={"action": "break-glass"}).json()["records"]
        assert len(records) == 1 and records[0]["identity"] == me["accessor"]
        assert records[0]["detail"] == "last admin revoked"
        assert records[0]["client"].startswith("local:")
        assert rescued.post("/v1/auth/tokens/revoke-self").status_code == 204
    with server.client(lasting.json()["token"]) as new_admin:
        assert new_admin.get("/v1/secrets/apps/db").status_code == 200
    verify = subprocess.run(
        [secretsd_executable(), "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "SECRETSD_DATABASE_URL": server.settings.sqlalchemy_url},
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr


def test_break_glass_refuses_a_wrong_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    refused = recover("--data-dir", str(missing))
    assert refused.returncode == 2, refused.stderr
    assert "no secretsd database" in refused.stderr and "Traceback" not in refused.stderr
    assert not (missing / "secretsd.db").exists()
    forever = recover("--data-dir", str(missing), "--ttl", "0")
    assert forever.returncode == 2 and "must expire" in forever.stderr
