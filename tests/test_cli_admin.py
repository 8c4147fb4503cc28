"""``secretsd token | policy | approle | audit list`` as real processes against the real service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CANARY, RunningServer


def test_policy_files_with_line_numbers(cli: Any, tmp_path: Path, admin: httpx.Client) -> None:
    good = tmp_path / "web.yaml"
    good.write_text(
        "# web team\nrules:\n  - path: apps/web/*\n    capabilities: [read, list]\n"
        "  - path: apps/web/prod/**\n    capabilities: [deny]\n"
    )
    cli("policy", "write", "web", str(good))
    assert admin.get("/v1/policies/web").json()["rules"][1] == {
        "path": "apps/web/prod/**",
        "capabilities": ["deny"],
    }
    read = cli("policy", "read", "web").stdout.decode()
    assert "apps/web/*" in read and "deny" in read
    assert "web" in cli("policy", "list").stdout.decode().split()

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - path: apps/ok\n    capabilities: [read]\n"
        "  - path: apps/**/x\n    capabilities: [read]\n"
    )
    failed = cli("policy", "write", "web", str(bad), check=2)
    message = failed.stderr.decode()
    assert message.startswith("Error: ") and "Traceback" not in message
    assert f"{bad}: policy 'web' rule 2 (line 4)" in message
    assert "'**' may only be the last segment" in message
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - path: [unclosed\n")
    assert "line 3" in cli("policy", "write", "x", str(broken), check=2).stderr.decode()
    # Nothing changed on the failed writes.
    assert admin.get("/v1/policies/web").json()["rules"][0]["path"] == "apps/web/*"
    cli(
        "policy",
        "write",
        "stdin-policy",
        "-",
        input=b'{"rules": [{"path": "a", "capabilities": ["read"]}]}',
    )
    cli("policy", "delete", "stdin-policy")
    assert admin.get("/v1/policies/stdin-policy").status_code == 404


def test_tokens_from_the_command_line(cli: Any, tmp_path: Path, server: RunningServer) -> None:
    policy_file = tmp_path / "web.yaml"
    policy_file.write_text("rules:\n  - path: apps/web/*\n    capabilities: [read]\n")
    cli("policy", "write", "web", str(policy_file))
    created = cli("token", "create", "--policy", "web", "--ttl", "2h", "--display-name", "ci")
    token = created.stdout.decode().strip()
    CANARY.remember(token)
    assert token.startswith("sdt_")
    assert "accessor" in created.stderr.decode() and token not in created.stderr.decode()
    as_json = json.loads(cli("token", "lookup", "--json", env={"SECRETSD_TOKEN": token}).stdout)
    accessor = as_json["accessor"]
    assert as_json["display_name"] == "ci" and as_json["policies"] == ["web"]
    listed = json.loads(cli("token", "list", "--json").stdout)["tokens"]
    assert accessor in {t["accessor"] for t in listed}
    renewed = cli("token", "renew", accessor, "--increment", "1h").stdout.decode()
    assert accessor in renewed
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    cli("token", "revoke", "--token-file", str(token_file))
    with server.client(token) as client:
        assert client.get("/v1/auth/tokens/self").status_code == 401
    assert "exactly one of" in cli("token", "revoke", check=2).stderr.decode()


def test_approle_from_the_command_line(cli: Any, tmp_path: Path, server: RunningServer) -> None:
    policy_file = tmp_path / "ci.yaml"
    policy_file.write_text("rules:\n  - path: apps/ci/**\n    capabilities: [read]\n")
    cli("policy", "write", "ci", str(policy_file))
    role_id = (
        cli("approle", "write", "builder", "--policy", "ci", "--token-ttl", "5m")
        .stdout.decode()
        .strip()
    )
    issued = cli("approle", "secret-id", "builder", "--num-uses", "1")
    secret_id = issued.stdout.decode().strip()
    CANARY.remember(secret_id)
    assert secret_id not in issued.stderr.decode()
    with httpx.Client(base_url=server.url) as anonymous:
        login = anonymous.post(
            "/v1/auth/approle/login", json={"role_id": role_id, "secret_id": secret_id}
        )
        assert login.status_code == 200
        CANARY.remember(login.json()["token"])
    ids = json.loads(cli("approle", "secret-ids", "builder", "--json").stdout)["secret_ids"]
    assert ids[0]["uses_remaining"] == 0
    cli("approle", "revoke-secret-id", "builder", ids[0]["secret_id_accessor"])
    assert "builder" in cli("approle", "list").stdout.decode()
    assert json.loads(cli("approle", "read", "builder", "--json").stdout)["role_id"] == role_id
    cli("approle", "delete", "builder")
    assert (
        cli("approle", "read", "builder", check=3).stderr.decode().startswith("Error: no AppRole")
    )


def test_audit_list(cli: Any, admin: httpx.Client) -> None:
    for i in range(3):
        admin.put(f"/v1/secrets/cli-audit/s{i}", json={"data": {"k": "v"}})
        admin.get(f"/v1/secrets/cli-audit/s{i}")
    document = json.loads(
        cli(
            "audit",
            "list",
            "--path-prefix",
            "cli-audit",
            "--action",
            "read",
            "--json",
            "--limit",
            "0",
        ).stdout
    )  # one JSON document, like every other --json
    records = document["records"]
    assert [r["path"] for r in records] == [f"cli-audit/s{i}" for i in range(3)]
    assert document["more"] is False
    newest = json.loads(cli("audit", "list", "--newest-first", "--limit", "1", "--json").stdout)
    assert len(newest["records"]) == 1 and newest["more"] is True
    shown = cli("audit", "list", "--path-prefix", "cli-audit", "--limit", "2")
    table = shown.stdout.decode()
    assert len(table.splitlines()) == 2 and "cli-audit/s0" in table
    assert "Showing the first 2 records; more match" in shown.stderr.decode()
    assert (
        cli("audit", "list", "--since", "yesterday", check=2).stderr.decode().startswith("Error:")
    )


def test_readme_approle_example_works_on_a_laptop(cli: Any, tmp_path: Path) -> None:
    """The README's AppRole lines, in order, from 127.0.0.1 (issue 9: it failed on a laptop)."""
    missing = cli("approle", "write", "builder", "--policy", "ci", "--bound-cidr",
                  "127.0.0.1/32", check=2)  # fmt: skip
    assert "policy 'ci' does not exist; create it first" in missing.stderr.decode()
    ci = tmp_path / "ci.yaml"
    ci.write_text("rules:\n  - path: apps/ci/**\n    capabilities: [read]\n")
    cli("policy", "write", "ci", str(ci))
    cli("put", "apps/ci/deploy", "key=-", input=b"deploy-key-1")
    role_id = cli("approle", "write", "builder", "--policy", "ci", "--token-ttl", "10m",
                  "--bound-cidr", "127.0.0.1/32").stdout.decode().strip()  # fmt: skip
    secret_id = cli("approle", "secret-id", "builder", "--num-uses", "1", "--ttl", "15m")
    value = secret_id.stdout.decode().strip()
    CANARY.remember(value)
    host = {"SECRETSD_TOKEN": None, "SECRETSD_ROLE_ID": role_id, "SECRETSD_SECRET_ID": value}
    got = cli("get", "secretsd://apps/ci/deploy#key", env=host)
    assert got.stdout == b"deploy-key-1"
