"""`--managed` and `--fix` against a real secretsd (OpenBao behind it), with the hash-lookup route."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from synth import password

from secretsd.cli.main import main

STORED = "corp-internal-" + password(seed=61)  # no rule would flag it on its own
OTHER = "ops-only-" + password(seed=62)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def live(server: Any, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The test server (the hash-lookup route is part of the app) and credentials in the env."""
    assert (
        admin.put("/v1/secrets/apps/web/db", json={"data": {"password": STORED}}).status_code == 200
    )
    assert (
        admin.put("/v1/secrets/ops/infra/root", json={"data": {"password": OTHER}}).status_code
        == 200
    )
    monkeypatch.setenv("SECRETSD_ADDR", server.url)
    monkeypatch.setenv("SECRETSD_TOKEN", server.token)
    monkeypatch.delenv("SECRETSD_TOKEN_FILE", raising=False)
    return server


def lookup(client: httpx.Client, *values: str) -> list[str]:
    response = client.post(
        "/v1/values/hash-lookup", json={"prefixes": [sha(v)[:5] for v in values]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["algorithm"] == "sha256"
    hashes: list[str] = body["hashes"]
    return hashes


def test_route_returns_only_readable_full_hashes(live: Any, admin: httpx.Client) -> None:
    assert sha(STORED) in lookup(admin, STORED, OTHER)
    assert sha(OTHER) in lookup(admin, STORED, OTHER)
    assert (
        admin.put(
            "/v1/policies/web-reader",
            json={"rules": [{"path": "apps/web/**", "capabilities": ["read"]}]},
        ).status_code
        == 200
    )
    token = admin.post("/v1/auth/tokens", json={"policies": ["web-reader"], "ttl": "1h"}).json()[
        "token"
    ]
    with live.client(token) as reader:
        seen = lookup(reader, STORED, OTHER)
    assert sha(STORED) in seen
    assert sha(OTHER) not in seen  # hashes of values the caller may not read never leave


def test_route_refreshes_on_change_and_validates(live: Any, admin: httpx.Client) -> None:
    assert sha(STORED) in lookup(admin, STORED)  # builds the index
    new_value = "rotated-" + password(seed=63)
    assert (
        admin.put("/v1/secrets/apps/web/db", json={"data": {"password": new_value}}).status_code
        == 200
    )
    assert sha(new_value) in lookup(admin, new_value)
    assert sha(STORED) not in lookup(admin, STORED)
    bad = admin.post("/v1/values/hash-lookup", json={"prefixes": ["XYZ"]})
    assert bad.status_code in (400, 422)
    assert "error" in bad.json()
    with httpx.Client(base_url=live.url) as anonymous:
        assert anonymous.post("/v1/values/hash-lookup", json={"prefixes": []}).status_code == 401


def test_scan_managed_flags_a_stored_value(
    live: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(
        f"upstream:\n  shared_value: {STORED}\n  name: web-frontend\n"
    )
    code = main(["scan", str(tmp_path), "--managed", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [(f["rule"], f["path"], f["line"]) for f in findings] == [
        ("managed-secret", "app.yaml", 2)
    ]
    assert STORED not in out


def test_fix_stores_the_value_and_rewrites(
    live: Any, admin: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    value = password(seed=64)
    (project / "settings.py").write_text(f'DB_PASSWORD = "{value}"\n')
    code = main(["scan", str(project), "--fix", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert value not in out
    assert (
        project / "settings.py"
    ).read_text() == 'import os\nDB_PASSWORD = os.environ["DB_PASSWORD"]\n'
    stored = admin.get("/v1/secrets/scanned/shop/settings").json()
    assert stored["data"] == {"db_password": value}
