"""One plan over the Ansible tree and the Kubernetes manifests together (issue 10, duplicates).

The shared fixtures (real ansible-vault and kubectl output) hold the same
values in both sources: the unicode greeting is ``vault_motd`` and
``redis_greeting`` in Ansible and ``GREETING`` of the ``shop/cart-env`` Secret;
``banner`` (Ansible) is ``motto`` of ``accounts/signing-key``. Planned
separately, the cross-source copies go unnoticed; planned together, each group
keeps one path and the rewrite points every other reference at it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.migrate.conftest import EXPECTED, FIXTURES, expected_bytes, read_back, source_key


def _expected_value(var: str) -> bytes:
    item = next(i for i in EXPECTED["items"] if (i.get("var_path") or [None])[-1] == var)
    return expected_bytes(item["value"])


def _group(plan: dict[str, Any], *keys: tuple[Any, ...]) -> dict[str, Any]:
    for group in plan["duplicates"]:
        if set(keys) <= {source_key(s) for s in group["sources"]}:
            return group
    raise AssertionError(f"no duplicate group holds {keys}")


GREETING = [
    ("ansible", "inventory/live/group_vars/all/vault.yml", ("vault_motd",)),
    ("ansible", "roles/redis/vars/main.yml", ("redis_greeting",)),
    ("k8s", "shop/app.yaml", "shop", "cart-env", "GREETING"),
]
BANNER = [
    ("ansible", "group_vars/frontends.yml", ("banner",)),
    ("k8s", "accounts/handwritten.yaml", "accounts", "signing-key", "motto"),
]


def test_duplicates_are_found_across_sources(migrate: Any) -> None:
    ansible, k8s = str(FIXTURES / "ansible"), str(FIXTURES / "k8s")
    alone = [json.loads(migrate("plan", kind, root).stdout) for kind, root in
             (("ansible", ansible), ("k8s", k8s))]  # fmt: skip
    for plan in alone:  # each source alone: no group spans both types
        for group in plan["duplicates"]:
            assert len({s["type"] for s in group["sources"]}) == 1
    together = json.loads(migrate("plan", "ansible", ansible, "k8s", k8s).stdout)
    assert len(together["items"]) == sum(len(p["items"]) for p in alone)
    assert together["source"]["type"] == "combined"
    by_source = {source_key(i["source"]): i for i in together["items"]}
    for members in (GREETING, BANNER):
        group = _group(together, *members)
        targets = {by_source[m]["target"] for m in members}
        assert group["keep"] in targets
        assert set(group["reference_from"]) == targets - {group["keep"]}
        for member in members:
            item = by_source[member]
            if item["target"] != group["keep"]:
                assert item["duplicate_of"] == group["keep"]
            else:
                assert "duplicate_of" not in item


def test_a_combined_plan_is_applied_and_rewritten_onto_the_kept_paths(
    migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    ansible, k8s = str(FIXTURES / "ansible"), str(FIXTURES / "k8s")
    plan_file, out = tmp_path / "plan.json", tmp_path / "rewritten"
    migrate("plan", "k8s", k8s, "ansible", ansible, "--out", str(plan_file), "--rewrite", str(out))
    saved = json.loads(plan_file.read_text())
    applied = json.loads(migrate("apply", str(plan_file)).stdout)  # the reviewed plan, as is
    assert not applied["failed"] and len(applied["written"]) == len(saved["targets"])
    by_source = {source_key(i["source"]): i for i in saved["items"]}
    # Encrypted copies win over plaintext ones, then the shortest target: the Secret's key.
    keep = _group(saved, *GREETING)["keep"]
    assert keep == "secretsd://k8s/shop/cart-env#GREETING"
    assert read_back(admin, "k8s/shop/cart-env")[0]["GREETING"] == _expected_value("vault_motd")

    # Ansible lookups of a duplicate name the kept path, here a Kubernetes one (files
    # of each source go below ansible/ and k8s/ of the output folder).
    lookup = f"{{{{ lookup('secretsd', '{keep}') }}}}"
    whole = yaml.safe_load((out / "ansible/inventory/live/group_vars/all/vault.yml").read_text())
    assert whole["vault_motd"] == lookup  # was encrypted whole: now a plain vars file
    inline = (out / "ansible/roles/redis/vars/main.yml").read_text("utf-8")
    assert f'redis_greeting: "{lookup}"' in inline
    assert by_source[GREETING[1]]["target"] not in inline
    assert _group(saved, *BANNER)["keep"] == "secretsd://ansible/frontends/banner#value"
    frontends = (out / "ansible" / "group_vars/frontends.yml").read_text("utf-8")
    assert "lookup('secretsd', 'secretsd://ansible/frontends/banner#value')" in frontends
    # The Secret loaded whole (envFrom) is referenced whole, at its own path.
    app = (out / "k8s" / "shop/app.yaml").read_text("utf-8")
    assert "secretsd.io/secret-cart-env-env: secretsd://k8s/shop/cart-env" in app
    assert not list(out.glob("*.yml")) and not (out / "roles").exists()  # nothing outside


def test_source_arguments_are_checked_once_for_every_command(migrate: Any) -> None:
    ansible, k8s = str(FIXTURES / "ansible"), str(FIXTURES / "k8s")
    for command in ("plan", "apply", "verify"):
        twice = migrate(command, "ansible", ansible, "ansible", ansible, check=2)
        assert b"ansible is given twice" in twice.stderr
        stray = migrate(command, "k8s", k8s, "--vault-id=dev@/nonexistent", check=2)
        assert b"--vault-id and --vault-password-file are for ansible sources" in stray.stderr
        unknown = migrate(command, "ansible", ansible, "helm", k8s, check=2)
        assert b"unknown source kind 'helm'" in unknown.stderr
    # Options for the other kind are fine once that kind is among the sources.
    mixed = json.loads(
        migrate("plan", "k8s", k8s, "-n", "shop", "ansible", ansible, check=0).stdout
    )
    assert {i["source"]["namespace"] for i in mixed["items"] if i["source"]["type"] == "k8s"} == {
        "shop"
    }
