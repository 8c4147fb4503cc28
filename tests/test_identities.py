"""Tokens, AppRole logins, policies through the API, and audit queries."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import (
    ADMIN_TOKEN,
    RunningServer,
    make_settings,
    secretsd_executable,
    start_server,
)


def error(response: httpx.Response) -> dict[str, str]:
    return dict(response.json()["error"])


# -- tokens ---------------------------------------------------------------------


def test_token_lifecycle(server: RunningServer, admin: httpx.Client) -> None:
    admin.put(
        "/v1/policies/reader", json={"rules": [{"path": "apps/**", "capabilities": ["read"]}]}
    )
    admin.put("/v1/secrets/apps/db", json={"data": {"k": "v"}})
    created = admin.post(
        "/v1/auth/tokens",
        json={"policies": ["reader"], "ttl": "1h", "max_ttl": "2h", "display_name": "ci"},
    )
    assert created.status_code == 200
    body = created.json()
    token, accessor = body["token"], body["accessor"]
    assert token.startswith("sdt_") and len(token) >= 40
    assert body["policies"] == ["reader"] and body["renewable"] is True
    assert 3500 < body["ttl"] <= 3600

    # Stored only as a hash.
    with server.state.engine.connect() as connection:
        stored = " ".join(
            str(v) for row in connection.execute(text("SELECT * FROM tokens")) for v in row
        )
    assert token not in stored

    with server.client(token) as client:
        me = client.get("/v1/auth/tokens/self").json()
        assert me["accessor"] == accessor and "token" not in me
        assert client.get("/v1/secrets/apps/db").status_code == 200
        renewed = client.post("/v1/auth/tokens/renew-self", json={"increment": "10h"}).json()
        assert 7100 < renewed["ttl"] <= 7200  # capped by max_ttl
        assert client.post("/v1/auth/tokens/revoke-self").status_code == 204
        revoked = client.get("/v1/secrets/apps/db")
        assert revoked.status_code == 401
        assert "was revoked" in error(revoked)["message"]

    listed = admin.get("/v1/auth/tokens", params={"include_revoked": "true"}).json()["tokens"]
    assert accessor in {t["accessor"] for t in listed}
    assert all("token" not in t for t in listed)
    assert admin.get(f"/v1/auth/tokens/accessors/{accessor}").json()["revoked"] is True


def test_expired_and_revoked_by_accessor(server: RunningServer, admin: httpx.Client) -> None:
    short = admin.post("/v1/auth/tokens", json={"policies": [], "ttl": "1s"}).json()
    other = admin.post("/v1/auth/tokens", json={"policies": [], "ttl": "1h"}).json()
    time.sleep(1.2)
    with server.client(short["token"]) as client:
        expired = client.get("/v1/auth/tokens/self")
        assert expired.status_code == 401 and "expired at" in error(expired)["message"]
    with server.client(other["token"]) as client:
        assert client.get("/v1/auth/tokens/self").status_code == 200
        assert (
            admin.post(f"/v1/auth/tokens/accessors/{other['accessor']}/revoke").status_code == 204
        )
        assert client.get("/v1/auth/tokens/self").status_code == 401
    assert admin.post("/v1/auth/tokens/accessors/nope/revoke").status_code == 404
    forever = admin.post("/v1/auth/tokens", json={"policies": [], "ttl": 0}).json()
    assert forever["expires_at"] is None and forever["renewable"] is False
    with server.client(forever["token"]) as client:
        refused = client.post("/v1/auth/tokens/renew-self", json={})
        assert refused.status_code == 422 and "not renewable" in error(refused)["message"]
    bad = admin.post("/v1/auth/tokens", json={"policies": [], "ttl": "soon"})
    assert bad.status_code == 422 and "not a duration" in error(bad)["message"]


def test_revocation_reaches_other_replicas(
    tmp_path: Path, bao: Any, vault_prefix: str, database_url: str
) -> None:
    a = start_server(make_settings(tmp_path / "a", bao, vault_prefix, database_url))
    b = start_server(make_settings(tmp_path / "b", bao, vault_prefix, database_url))
    try:
        with a.client() as admin_a:
            issued = admin_a.post("/v1/auth/tokens", json={"policies": []}).json()
        with b.client(issued["token"]) as via_b:
            assert via_b.get("/v1/auth/tokens/self").status_code == 200  # now cached in b
            with a.client() as admin_a:
                admin_a.post(f"/v1/auth/tokens/accessors/{issued['accessor']}/revoke")
            deadline = time.monotonic() + 2
            while via_b.get("/v1/auth/tokens/self").status_code == 200:
                assert time.monotonic() < deadline, "revocation did not reach the other replica"
                time.sleep(0.05)
    finally:
        a.stop()
        b.stop()


# -- AppRole --------------------------------------------------------------------


def test_approle_logins(server: RunningServer, admin: httpx.Client) -> None:
    admin.put("/v1/policies/host", json={"rules": [{"path": "hosts/**", "capabilities": ["read"]}]})
    role = admin.put(
        "/v1/auth/approle/roles/web",
        json={"policies": ["host"], "token_ttl": "10m", "token_max_ttl": "1h"},
    ).json()
    role_id = role["role_id"]
    assert admin.get("/v1/auth/approle/roles/web").json()["role_id"] == role_id
    assert admin.get("/v1/auth/approle/roles").json() == {"roles": ["web"]}

    single = admin.post("/v1/auth/approle/roles/web/secret-ids", json={"num_uses": 1}).json()
    with httpx.Client(base_url=server.url) as anonymous:
        login = anonymous.post(
            "/v1/auth/approle/login", json={"role_id": role_id, "secret_id": single["secret_id"]}
        )
        assert login.status_code == 200
        token = login.json()
        assert token["policies"] == ["host"] and token["method"] == "approle"
        assert 590 < token["ttl"] <= 600
        again = anonymous.post(
            "/v1/auth/approle/login", json={"role_id": role_id, "secret_id": single["secret_id"]}
        )
        assert again.status_code == 401 and "AppRole login refused" in error(again)["message"]

        reusable = admin.post("/v1/auth/approle/roles/web/secret-ids", json={}).json()
        for _ in range(3):
            ok = anonymous.post(
                "/v1/auth/approle/login",
                json={"role_id": role_id, "secret_id": reusable["secret_id"]},
            )
            assert ok.status_code == 200
        accessor = reusable["secret_id_accessor"]
        assert admin.delete(f"/v1/auth/approle/roles/web/secret-ids/{accessor}").status_code == 204
        assert (
            anonymous.post(
                "/v1/auth/approle/login",
                json={"role_id": role_id, "secret_id": reusable["secret_id"]},
            ).status_code
            == 401
        )

        bound = admin.post(
            "/v1/auth/approle/roles/web/secret-ids", json={"bound_cidrs": ["10.0.0.0/8"]}
        ).json()
        assert (
            anonymous.post(
                "/v1/auth/approle/login", json={"role_id": role_id, "secret_id": bound["secret_id"]}
            ).status_code
            == 401
        )
        wrong = anonymous.post("/v1/auth/approle/login", json={"role_id": "x", "secret_id": "y"})
        assert wrong.status_code == 401

    listed = admin.get("/v1/auth/approle/roles/web/secret-ids").json()["secret_ids"]
    assert len(listed) == 3 and all("secret_id" not in s for s in listed)
    denied = admin.get("/v1/audit", params={"action": "login", "outcome": "denied"}).json()[
        "records"
    ]
    reasons = {r["detail"] for r in denied}
    assert {"approle: secret_id used up", "approle: secret_id revoked",
            "approle: client 127.0.0.1 outside bound CIDRs", "approle: unknown role_id"} <= reasons  # fmt: skip
    dumped = json.dumps(denied)
    assert single["secret_id"] not in dumped and bound["secret_id"] not in dumped
    bad_cidr = admin.post("/v1/auth/approle/roles/web/secret-ids", json={"bound_cidrs": ["ten"]})
    assert bad_cidr.status_code == 422 and "not a CIDR block" in error(bad_cidr)["message"]


# -- policies -------------------------------------------------------------------


def test_policy_api(server: RunningServer, admin: httpx.Client) -> None:
    rules = [{"path": "apps/web/*", "capabilities": ["list", "read"]}]  # stored sorted
    first = admin.put("/v1/policies/web", json={"rules": rules})
    assert first.json() == {"name": "web", "rules": rules, "created": True}
    assert admin.put("/v1/policies/web", json={"rules": rules}).json()["created"] is False
    assert admin.get("/v1/policies/web").json()["rules"] == rules
    assert "web" in admin.get("/v1/policies").json()["policies"]
    bad = admin.put(
        "/v1/policies/web",
        json={"rules": [rules[0], {"path": "a/**/b", "capabilities": ["read"]}]},
    )
    assert bad.status_code == 422
    assert (
        "rule 2" in error(bad)["message"] and "'**' may only be the last" in error(bad)["message"]
    )
    assert admin.get("/v1/policies/web").json()["rules"] == rules  # unchanged
    assert admin.put("/v1/policies/admin", json={"rules": rules}).status_code == 409
    assert admin.delete("/v1/policies/admin").status_code == 409

    # A policy change applies to live tokens at once.
    token = admin.post("/v1/auth/tokens", json={"policies": ["web"]}).json()["token"]
    admin.put("/v1/secrets/apps/web/db", json={"data": {"k": "v"}})
    with server.client(token) as client:
        assert client.get("/v1/secrets/apps/web/db").status_code == 200
        admin.put(
            "/v1/policies/web", json={"rules": [{"path": "other/*", "capabilities": ["read"]}]}
        )
        assert client.get("/v1/secrets/apps/web/db").status_code == 403
        assert admin.delete("/v1/policies/web").status_code == 204
        assert client.get("/v1/secrets/other/x").status_code == 403
    assert admin.get("/v1/policies/web").status_code == 404


# -- audit ----------------------------------------------------------------------


def test_audit_query_filters_and_pages(server: RunningServer, admin: httpx.Client) -> None:
    for i in range(5):
        admin.put(f"/v1/secrets/q/s{i}", json={"data": {"k": "v"}})
        admin.get(f"/v1/secrets/q/s{i}")
    admin.get("/v1/secrets/q/missing")
    reads = admin.get("/v1/audit", params={"path_prefix": "q", "action": "read"}).json()
    assert [r["path"] for r in reads["records"]] == [f"q/s{i}" for i in range(5)] + ["q/missing"]
    assert reads["records"][-1]["outcome"] == "error"
    record = reads["records"][0]
    assert {"time", "identity", "action", "path", "version", "outcome", "client",
            "request_id", "seq", "hash", "prev_hash"} <= set(record)  # fmt: skip
    assert record["identity"] and record["display_name"] == "admin (bootstrap)"

    pages: list[str] = []
    cursor: str | None = ""
    while cursor is not None:
        page = admin.get(
            "/v1/audit", params={"path_prefix": "q", "action": "read", "limit": 2, "cursor": cursor}
        ).json()
        pages.extend(r["path"] for r in page["records"])
        cursor = page["next_cursor"]
    assert pages == [r["path"] for r in reads["records"]]

    newest = admin.get("/v1/audit", params={"order": "desc", "limit": 1}).json()["records"][0]
    assert newest["action"] in ("audit-query", "read")
    future = admin.get("/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["records"] == []
    by_identity = admin.get("/v1/audit", params={"identity": "admin (bootstrap)", "limit": 1})
    assert by_identity.json()["records"]
    assert admin.get("/v1/audit", params={"since": "yesterday"}).status_code == 422
    assert admin.get("/v1/audit", params={"outcome": "maybe"}).status_code == 422


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    full.update(env)
    return subprocess.run(
        [secretsd_executable(), *args], capture_output=True, text=True, env=full, timeout=60
    )


def test_audit_verify_command(server: RunningServer, admin: httpx.Client) -> None:
    admin.put("/v1/secrets/v", json={"data": {"k": "v"}})
    for _ in range(3):
        admin.get("/v1/secrets/v")
    settings = server.settings
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    # The data dir holds the audit key the records were hashed with.
    where = ("--data-dir", str(settings.data_dir))
    ok = run_cli("audit", "verify", "--json", *where, SECRETSD_DATABASE_URL=url)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and report["records_checked"] >= 5
    with server.state.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET path = 'elsewhere' WHERE seq = 3"))
    bad = run_cli("audit", "verify", *where, SECRETSD_DATABASE_URL=url)
    assert bad.returncode == 1
    assert "First bad record: seq 3" in bad.stderr and "modified" in bad.stderr


def test_audit_mirror_file(server_factory: Any, tmp_path: Path) -> None:
    mirror = tmp_path / "audit.jsonl"
    server = server_factory(audit_file=str(mirror))
    with server.client() as client:
        client.put("/v1/secrets/m", json={"data": {"password": "mirror-secret-value"}})
        client.get("/v1/secrets/m")
    lines = [json.loads(line) for line in mirror.read_text().splitlines()]
    assert [(r["action"], r["path"]) for r in lines if r["path"] == "m"][-1] == ("read", "m")
    assert "mirror-secret-value" not in mirror.read_text()
    assert ADMIN_TOKEN not in mirror.read_text()


@pytest.mark.parametrize("name", ["bad name", "x" * 65])
def test_policy_names_are_checked(admin: httpx.Client, name: str) -> None:
    response = admin.put(f"/v1/policies/{name}", json={"rules": []})
    assert response.status_code == 422
