"""A saved plan is applied exactly, or refused (writing nothing) if anything moved since."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx

from tests.migrate.conftest import FIXTURES, read_back, secret_paths


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "k8s"
    shutil.copytree(FIXTURES / "k8s" / "shop", root)
    return root


def test_saved_plan_is_applied_as_reviewed(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    plan_file = tmp_path / "plan.json"
    migrate("plan", "k8s", str(root), "--out", str(plan_file))
    saved = json.loads(plan_file.read_text())
    text = plan_file.read_text()
    assert "NmolNUlYQUFqOmxzKUhVcT1AJko" not in text and "6j%5IXAAj" not in text  # no values
    result = json.loads(migrate("apply", str(plan_file)).stdout)
    assert result["plan_id"] == saved["plan_id"]
    assert sorted(result["written"]) == sorted(
        {i["target"].removeprefix("secretsd://").partition("#")[0] for i in saved["items"]}
    )
    data, meta = read_back(admin, "k8s/shop/cart-env")
    assert data["DB_PASSWORD"] == b"6j%5IXAAj:ls)HUq=@&J"
    assert meta["custom_metadata"]["secretsd-migrate-plan"] == saved["plan_id"]


def test_plan_refused_after_its_source_changed(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    plan_file = tmp_path / "plan.json"
    migrate("plan", "k8s", str(root), "--out", str(plan_file))
    manifest = root / "tls.yaml"
    manifest.write_text(manifest.read_text() + "\n# edited after review\n")
    result = migrate("apply", str(plan_file), check=2)
    assert b"the sources changed since plan" in result.stderr
    assert b"tls.yaml" in result.stderr
    assert secret_paths(admin) == []


def test_plan_refused_after_a_target_changed(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    plan_file = tmp_path / "plan.json"
    migrate("plan", "k8s", str(root), "--out", str(plan_file))
    put = admin.put("/v1/secrets/k8s/shop/regcred", json={"data": {"other": "written-meanwhile"}})
    assert put.status_code == 200
    result = migrate("apply", str(plan_file), check=5)
    assert b"target secrets changed since plan" in result.stderr
    assert b"k8s/shop/regcred (version 0 -> 1)" in result.stderr
    assert secret_paths(admin) == ["k8s/shop/regcred"]


def test_changed_value_is_written_with_cas_and_other_keys_kept(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    migrate("apply", "k8s", str(root))
    # Someone adds a key by hand; then the source value changes.
    admin.patch("/v1/secrets/k8s/shop/cart-env", json={"data": {"HAND_ADDED": "kept-by-migrate"}})
    app = root / "app.yaml"
    app.write_text(app.read_text().replace("MDA3", "MDA4"))  # PIN 007 -> 008
    planned = json.loads(migrate("plan", "k8s", str(root)).stdout)
    actions = {
        i["source"]["key"]: i["action"]
        for i in planned["items"]
        if i["source"]["name"] == "cart-env"
    }
    assert actions["PIN"] == "changed"
    assert {a for k, a in actions.items() if k != "PIN"} == {"unchanged"}
    result = json.loads(migrate("apply", "k8s", str(root)).stdout)
    assert result["written"] == ["k8s/shop/cart-env"]
    data, meta = read_back(admin, "k8s/shop/cart-env")
    assert data["PIN"] == b"008" and data["HAND_ADDED"] == b"kept-by-migrate"
    assert meta["current_version"] == 3
    verified = migrate("verify", "k8s", str(root), "--json")
    assert json.loads(verified.stdout)["drift"] == 0
    admin.patch("/v1/secrets/k8s/shop/cart-env", json={"data": {"PIN": "999"}})
    drift = json.loads(migrate("verify", "k8s", str(root), "--json", check=1).stdout)
    assert [(d["state"], d["target"]) for d in drift["items"] if d["state"] != "in_sync"] == [
        ("differs", "secretsd://k8s/shop/cart-env#PIN")
    ]


def test_plan_file_cannot_make_apply_run_a_program(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    """A plan is data: a password script it names runs only if given again on apply."""
    root = tmp_path / "ansible"
    shutil.copytree(FIXTURES / "ansible", root)
    (root / "ansible.cfg").write_text("[defaults]\n")
    script = tmp_path / "prod-pass.sh"
    script.write_text(f"#!/bin/sh\ncat {FIXTURES / 'ansible/passwords/prod.txt'}\n")
    script.chmod(0o700)
    flags = [f"--vault-id=dev@{root / 'passwords/dev.txt'}", f"--vault-id=prod@{script}"]
    plan_file = tmp_path / "plan.json"
    migrate("plan", "ansible", str(root), *flags, "--out", str(plan_file))
    refused = migrate("apply", str(plan_file), check=2)
    assert b"runs a program or asks for a password; pass --vault-id prod@" in refused.stderr
    assert secret_paths(admin) == []
    applied = json.loads(migrate("apply", str(plan_file), flags[1]).stdout)
    assert applied["failed"] == [] and applied["written"]
