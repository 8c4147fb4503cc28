"""The shared fixture set, end to end: every expected value lands byte-exact in OpenBao.

``secretsd migrate`` runs as a real process against a real server (real
OpenBao, real SQLite); values are read back through the API.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.migrate.conftest import (
    EXPECTED,
    FIXTURES,
    expected_bytes,
    expected_key,
    read_back,
    secret_paths,
    source_key,
    vault_id_flags,
)


def _targets(plan: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {source_key(item["source"]): item for item in plan["items"]}


def _check_all(admin: httpx.Client, plan: dict[str, Any], source: str) -> int:
    targets = _targets(plan)
    checked = 0
    for item in EXPECTED["items"]:
        if item["source"] != source:
            continue
        planned = targets[expected_key(item)]
        path, _, key = planned["target"].removeprefix("secretsd://").partition("#")
        data, meta = read_back(admin, path)
        assert data[key] == expected_bytes(item["value"]), (item["id"], planned["target"])
        assert planned["binary"] is (item["value"]["type"] == "binary")
        custom = meta["custom_metadata"]
        assert custom["secretsd-migrate-plan"] == plan["plan_id"]
        assert custom["secretsd-migrate-source"].startswith(f"{source}:")
        checked += 1
    return checked


def test_ansible_tree_lands_byte_exact(migrate: Any, admin: httpx.Client) -> None:
    root = FIXTURES / "ansible"
    planned = json.loads(migrate("plan", "ansible", str(root), "--json").stdout)
    assert {i["action"] for i in planned["items"]} == {"new"}
    # ansible.cfg's vault_identity_list is enough: no flag needed.
    applied = json.loads(migrate("apply", "ansible", str(root)).stdout)
    assert not applied["failed"]
    assert _check_all(admin, planned, "ansible") == 34
    # A plain var next to vault values is not imported; files without secrets are left alone.
    assert not [i for i in planned["items"] if i["origin"] == "plaintext"]
    # Whole encrypted non-vars file: var_path null, key "content", binary kept.
    blob = _targets(planned)[("ansible", "roles/shop/files/keystore.p12", None)]
    assert blob["target"] == "secretsd://ansible/roles/shop/files/keystore.p12#content"
    assert blob["binary"] is True

    # Rerun: nothing to write, no new version anywhere.
    versions = {
        p: read_back(admin, p)[1]["current_version"] for p in secret_paths(admin, "ansible")
    }
    again = json.loads(migrate("apply", "ansible", str(root)).stdout)
    assert again["written"] == [] and again["unchanged"] == 34
    assert {p: read_back(admin, p)[1]["current_version"] for p in versions} == versions
    verified = json.loads(migrate("verify", "ansible", str(root), "--json").stdout)
    assert verified["drift"] == 0 and len(verified["items"]) == 34


def test_kubernetes_manifests_land_byte_exact(migrate: Any, admin: httpx.Client) -> None:
    root = FIXTURES / "k8s"
    planned = json.loads(migrate("plan", "k8s", str(root)).stdout)  # not a TTY: JSON
    items = planned["items"]
    assert all(i["source"]["type"] == "k8s" for i in items)
    # The SealedSecret and the non-Secret objects are not imported.
    assert not [i for i in items if i["source"]["name"] in ("sealed-api", "cart-config")]
    migrate("apply", "k8s", str(root))
    assert _check_all(admin, planned, "k8s") == 48
    # stringData wins over data for the same key.
    overlap, _ = read_back(admin, "k8s/accounts/overlap")
    assert overlap["password"] == b"from-stringData-sV2GenFmtX"
    # Same Secret name in two namespaces: two secrets.
    assert "k8s/accounts/db-credentials" in secret_paths(admin, "k8s")
    assert "k8s/shop/db-credentials" in secret_paths(admin, "k8s")


def test_plan_json_shape_and_prefix(migrate: Any, admin: httpx.Client) -> None:
    planned = json.loads(
        migrate(
            "plan", "ansible", str(FIXTURES / "ansible"), "--prefix", "team/a", *vault_id_flags()
        ).stdout
    )
    item = next(i for i in planned["items"] if i["source"].get("var_path") == ["db", "password"])
    assert item == {
        **item,
        "action": "new",
        "target": "secretsd://team/a/ansible/frontends/db#password",
        "source": {
            "type": "ansible",
            "file": "group_vars/frontends.yml",
            "var_path": ["db", "password"],
        },
    }
    k8s = json.loads(migrate("plan", "k8s", str(FIXTURES / "k8s" / "shop" / "app.yaml")).stdout)
    assert {tuple(sorted(i["source"])) for i in k8s["items"]} == {
        ("file", "key", "name", "namespace", "type")
    }
    assert k8s["items"][0]["source"]["file"] == "app.yaml"
    assert secret_paths(admin) == []  # plan writes nothing


def test_duplicates_are_shown_with_a_proposal(migrate: Any) -> None:
    """The TLS key in group_vars/all and in the redis role is one value in two places."""
    planned = json.loads(migrate("plan", "ansible", str(FIXTURES / "ansible")).stdout)
    groups = {g["keep"]: g for g in planned["duplicates"]}
    tls = groups["secretsd://ansible/all/vault_tls_key#value"]
    assert tls["reference_from"] == ["secretsd://ansible/roles/redis/redis_tls_key#value"]
    assert "keep secretsd://ansible/all/vault_tls_key#value" in tls["proposal"]
    by_target = {i["target"]: i for i in planned["items"]}
    assert by_target["secretsd://ansible/roles/redis/redis_tls_key#value"]["duplicate_of"] == (
        "secretsd://ansible/all/vault_tls_key#value"
    )
    assert len(planned["duplicates"]) == 2  # the TLS key and the unicode motd
    k8s = json.loads(migrate("plan", "k8s", str(FIXTURES / "k8s")).stdout)
    assert len(k8s["duplicates"]) == 2  # a CA cert and a service-account token, each twice
