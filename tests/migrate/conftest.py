"""Shared pieces of the migration tests: the fixture set, the CLI runner, reading back.

The fixture set made with the real ansible-vault and kubectl lives in
``tests/fixtures/migrate`` (a copy of ``../shared/fixtures/migrate``, checked
identical by ``test_fixtures_copy.py`` when ``../shared`` is beside the clone).
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CANARY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrate"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text("utf-8"))
BAD = json.loads((FIXTURES / "bad_inputs.json").read_text("utf-8"))


def expected_bytes(value: dict[str, Any]) -> bytes:
    kind = value["type"]
    if kind == "text":
        return str(value["text"]).encode("utf-8")
    if kind == "binary":
        return base64.b64decode(value["base64"])
    return json.dumps(value["json"]).encode()


# Every fixture value joins the suite's canary, except those that are also names (the
# service-account token Secret's "namespace" value is a namespace, printed in paths).
_NAMES = {i.get("namespace") for i in EXPECTED["items"]}
for _item in [*EXPECTED["items"], *(w for c in BAD["cases"] for w in c["would_be_items"])]:
    if "value" in _item:
        _text = expected_bytes(_item["value"]).decode("utf-8", "replace")
        if _text not in _NAMES:
            CANARY.remember(_text)


def vault_id_flags(root: Path = FIXTURES) -> list[str]:
    return [
        f"--vault-id=dev@{root / 'ansible/passwords/dev.txt'}",
        f"--vault-id=prod@{root / 'ansible/passwords/prod.txt'}",
    ]


@pytest.fixture
def migrate(cli: Any, tmp_path: Path) -> Any:
    """Run ``secretsd migrate ...`` against the test server; stdout joins the canary check."""
    state = tmp_path / "state"

    def run(*args: str, check: int = 0) -> subprocess.CompletedProcess[bytes]:
        result = cli("migrate", *args, env={"XDG_STATE_HOME": str(state)}, check=check)
        CANARY.texts.append(("stdout of secretsd migrate", result.stdout.decode(errors="replace")))
        return result

    return run


def read_back(admin: httpx.Client, path: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """A secret's exact bytes per key and its metadata, through the API."""
    response = admin.get(f"/v1/secrets/{path}")
    assert response.status_code == 200, (path, response.status_code)
    body = response.json()
    binary = set(body.get("binary_keys") or [])
    data = {
        key: base64.b64decode(value) if key in binary else value.encode("utf-8")
        for key, value in body["data"].items()
    }
    meta = admin.get(f"/v1/metadata/{path}").json()
    return data, meta


def source_key(source: dict[str, Any]) -> tuple[Any, ...]:
    if source["type"] == "ansible":
        var_path = source.get("var_path")
        return ("ansible", source["file"], tuple(var_path) if var_path is not None else None)
    return ("k8s", source["file"], source["namespace"], source["name"], source["key"])


def expected_key(item: dict[str, Any]) -> tuple[Any, ...]:
    if item["source"] == "ansible":
        var_path = item.get("var_path")
        return ("ansible", item["file"], tuple(var_path) if var_path is not None else None)
    return ("k8s", item["file"], item["namespace"], item["name"], item["key"])


def secret_paths(admin: httpx.Client, prefix: str = "") -> list[str]:
    """Every secret path below ``prefix`` (recursive listing through the API)."""
    found: list[str] = []
    pending = [prefix]
    while pending:
        folder = pending.pop()
        url = f"/v1/metadata/{folder}" if folder else "/v1/metadata"
        response = admin.get(url, params={"list": "true"})
        if response.status_code == 404:
            continue
        assert response.status_code == 200, response.text
        for key in response.json()["keys"]:
            full = f"{folder}/{key}".lstrip("/") if folder else key
            if key.endswith("/"):
                pending.append(full.rstrip("/"))
            else:
                found.append(full)
    return sorted(found)
