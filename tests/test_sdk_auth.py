"""How the SDK and CLI authenticate: AppRole login, re-login, token lifetime and renewal."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import secretsd
from secretsd.client import Client, load_client_settings
from tests.conftest import ADMIN_TOKEN, RunningServer, secretsd_executable, self_signed_certificate


@pytest.fixture
def approle(server: RunningServer, admin: httpx.Client, tmp_path: Path) -> dict[str, Any]:
    """A policy reading apps/web/**, an AppRole bound to it, a role_id and a secret-id file."""
    admin.put(
        "/v1/policies/web-read",
        json={"rules": [{"path": "apps/web/**", "capabilities": ["read", "list"]}]},
    ).raise_for_status()
    admin.put(
        "/v1/auth/approle/roles/web", json={"policies": ["web-read"], "token_ttl": "1h"}
    ).raise_for_status()
    role_id = admin.get("/v1/auth/approle/roles/web").json()["role_id"]
    secret_id = admin.post("/v1/auth/approle/roles/web/secret-ids", json={}).json()["secret_id"]
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n")
    admin.put("/v1/secrets/apps/web/db", json={"data": {"password": "pw-synthetic"}})
    return {"role_id": role_id, "secret_id": secret_id, "secret_id_file": secret_file}


def test_approle_login_from_the_environment_and_relogin_after_revocation(
    server: RunningServer, admin: httpx.Client, approle: dict[str, Any]
) -> None:
    settings = load_client_settings(
        server.url,
        env={
            "SECRETSD_ROLE_ID": approle["role_id"],
            "SECRETSD_SECRET_ID_FILE": str(approle["secret_id_file"]),
        },
        use_login_file=False,
    )
    assert settings.credential_kind == "approle"
    assert approle["secret_id"] not in repr(settings)
    with Client(settings=settings) as sdk:
        assert sdk.get("secretsd://apps/web/db#password") == "pw-synthetic"
        with pytest.raises(secretsd.Forbidden):
            sdk.put("apps/web/db", {"password": "x"})
        info = sdk.token_info()
        assert info.policies == ("web-read",) and info.method == "approle"
        assert info.renewable and info.ttl is not None and 0 < info.ttl <= 3600
        # The token is revoked: the client logs in again with its credentials.
        admin.post(f"/v1/auth/tokens/accessors/{info.accessor}/revoke").raise_for_status()
        sdk.invalidate()
        time.sleep(0.3)  # the revocation reaches the worker through the change feed
        assert sdk.get("secretsd://apps/web/db#password") == "pw-synthetic"
        assert sdk.token_info().accessor != info.accessor


def test_explicit_approle_login_and_a_refused_one(
    server: RunningServer, approle: dict[str, Any]
) -> None:
    with Client(server.url, "sdt_placeholder-token-unused", auto_renew=False) as sdk:
        info = sdk.login_approle(approle["role_id"], approle["secret_id"])
        assert info.token and info.token not in repr(info)
        assert sdk.get("secretsd://apps/web/db#password") == "pw-synthetic"
        with pytest.raises(secretsd.Unauthenticated):
            sdk.login_approle(approle["role_id"], "wrong-secret-id")


def test_renewable_tokens_are_renewed_before_they_expire(
    server: RunningServer, admin: httpx.Client
) -> None:
    issued = admin.post(
        "/v1/auth/tokens", json={"policies": ["admin"], "ttl": 3, "max_ttl": "1h"}
    ).json()
    admin.put("/v1/secrets/apps/renew", json={"data": {"k": "v"}})
    with Client(server.url, issued["token"], cache_ttl=0) as sdk:
        first = sdk.token_info()
        # Every call finds the token due for renewal (under a third of its life, or 5 s, left).
        # (3 s, not 1 s: on a loaded machine a request may take a good part of a second.)
        for _ in range(3):
            time.sleep(1.2)
            assert sdk.get("secretsd://apps/renew#k") == "v"
        assert sdk.token_info().expires_at != first.expires_at
    # Without renewal the token would have expired by now (3 s TTL, 3.6 s elapsed).
    short = admin.post("/v1/auth/tokens", json={"policies": ["admin"], "ttl": 1}).json()
    time.sleep(1.1)
    with (
        Client(server.url, short["token"], auto_renew=False) as sdk,
        pytest.raises(secretsd.Unauthenticated),
    ):
        sdk.get("secretsd://apps/renew#k")


def test_a_rotated_token_file_is_read_again(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    admin.put("/v1/secrets/apps/rotated", json={"data": {"k": "v"}})
    old = admin.post("/v1/auth/tokens", json={"policies": ["admin"]}).json()
    token_file = tmp_path / "token"
    token_file.write_text(old["token"])
    settings = load_client_settings(
        server.url, env={"SECRETSD_TOKEN_FILE": str(token_file)}, use_login_file=False
    )
    with Client(settings=settings, cache_ttl=0, auto_renew=False) as sdk:
        assert sdk.get("secretsd://apps/rotated#k") == "v"
        new = admin.post("/v1/auth/tokens", json={"policies": ["admin"]}).json()
        token_file.write_text(new["token"])  # an agent rotates the file...
        admin.post(f"/v1/auth/tokens/accessors/{old['accessor']}/revoke").raise_for_status()
        time.sleep(0.3)
        assert sdk.get("secretsd://apps/rotated#k") == "v"  # ...and the SDK follows


def test_kubernetes_settings_from_the_environment(tmp_path: Path) -> None:
    jwt = tmp_path / "sa-token"
    jwt.write_text("header.payload.signature")
    settings = load_client_settings(
        "http://127.0.0.1:1",
        env={"SECRETSD_K8S_ROLE": "web", "SECRETSD_K8S_TOKEN_FILE": str(jwt)},
        use_login_file=False,
    )
    assert settings.credential_kind == "kubernetes"
    assert settings.read_k8s_jwt() == "header.payload.signature"
    default = load_client_settings(
        "http://127.0.0.1:1", env={"SECRETSD_K8S_ROLE": "web"}, use_login_file=False
    )
    assert str(default.k8s_token_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"


def test_cli_login_with_approle(
    server: RunningServer, approle: dict[str, Any], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), SECRETSD_ROLE_ID=approle["role_id"])
    logged = subprocess.run(
        [secretsd_executable(), "login", "--method", "approle", "--addr", server.url],
        input=approle["secret_id"].encode() + b"\n",
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert logged.returncode == 0, logged.stderr
    assert b"policies: web-read" in logged.stderr
    del env["SECRETSD_ROLE_ID"]
    got = subprocess.run(
        [secretsd_executable(), "get", "secretsd://apps/web/db#password"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert (got.returncode, got.stdout) == (0, b"pw-synthetic")
    assert ADMIN_TOKEN not in got.stderr.decode()


def test_the_login_file_is_used_only_for_its_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secretsd.client.config import store_login

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    store_login("http://secrets.example:8700/", "sdt_stored-login-token-value")
    alone = load_client_settings(env={})
    assert alone.addr == "http://secrets.example:8700"
    assert alone.token == "sdt_stored-login-token-value"
    assert alone.credentials_from == "login file"
    elsewhere = load_client_settings(env={"SECRETSD_ADDR": "http://other.example:8700"})
    assert elsewhere.token is None, "a stored token must never be sent to another address"
    configured = load_client_settings(env={"SECRETSD_TOKEN": "sdt_from-env-token-value"})
    assert configured.token == "sdt_from-env-token-value"
    # A corrupt login file is a clear error, but only when it is needed.
    (tmp_path / "config" / "secretsd" / "login.json").write_text("{not json")
    with pytest.raises(secretsd.ConfigError, match="secretsd login"):
        load_client_settings(env={})
    load_client_settings(env={"SECRETSD_ADDR": "http://a:1", "SECRETSD_TOKEN": "sdt_x-y-z-value"})


def test_bad_client_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(secretsd.ConfigError, match="SECRETSD_ADDR"):
        load_client_settings(env={"SECRETSD_ADDR": "secrets.example:8700"}, use_login_file=False)
    settings = load_client_settings(
        "https://secrets.example",
        env={"SECRETSD_CACERT": str(tmp_path / "missing.pem"), "SECRETSD_TOKEN": "t"},
        use_login_file=False,
    )
    with pytest.raises(secretsd.ConfigError, match="SECRETSD_CACERT"):
        Client(settings=settings)


def test_tls_with_a_private_ca_via_secretsd_cacert(
    tmp_path: Path, bao: Any, vault_prefix: str
) -> None:
    from tests.conftest import make_settings, start_server

    cert_file, key_file = self_signed_certificate(tmp_path)
    server = start_server(make_settings(tmp_path, bao, vault_prefix), tls=(cert_file, key_file))
    try:
        url = server.url
        env = {"SECRETSD_TOKEN": ADMIN_TOKEN, "SECRETSD_CACERT": str(cert_file)}
        with Client(settings=load_client_settings(url, env=env, use_login_file=False)) as sdk:
            sdk.put("apps/tls", {"k": "over-tls"})
            assert sdk.get("secretsd://apps/tls#k") == "over-tls"
        # Without the CA: a clear configuration error at once, not retries.
        started = time.monotonic()
        with (
            Client(url, ADMIN_TOKEN, auto_renew=False) as untrusting,
            pytest.raises(secretsd.ConfigError, match="SECRETSD_CACERT"),
        ):
            untrusting.get("secretsd://apps/tls#k")
        assert time.monotonic() - started < 2
    finally:
        server.stop()


def test_kubernetes_login_from_the_pod_token_file(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    from tests.test_kubernetes_login import ISSUER, keypair, projected

    key, public = keypair("rsa")
    admin.put(
        "/v1/auth/kubernetes/config",
        json={"issuer": ISSUER, "public_keys": [public], "audiences": ["secretsd"]},
    ).raise_for_status()
    admin.put(
        "/v1/policies/shop", json={"rules": [{"path": "shop/**", "capabilities": ["read"]}]}
    ).raise_for_status()
    admin.put(
        "/v1/auth/kubernetes/roles/shop-web",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "policies": ["shop"],
        },
    ).raise_for_status()
    admin.put("/v1/secrets/shop/db", json={"data": {"password": "pod-synthetic"}})
    token_file = tmp_path / "sa-token"
    token_file.write_text(projected(key, "shop", "web"))
    env = {"SECRETSD_K8S_ROLE": "shop-web", "SECRETSD_K8S_TOKEN_FILE": str(token_file)}
    settings = load_client_settings(server.url, env=env, use_login_file=False)
    with Client(settings=settings) as sdk:
        assert sdk.get("secretsd://shop/db#password") == "pod-synthetic"
        assert sdk.token_info().method == "kubernetes"
    # A pod of another service account is refused with the service's message.
    token_file.write_text(projected(key, "shop", "intruder"))
    with Client(settings=settings) as sdk, pytest.raises(secretsd.Unauthenticated):
        sdk.get("secretsd://shop/db#password")
