"""A tree made here with the real ``ansible-vault`` CLI: every vault-id source, CRLF,
unicode, binary, 1.1 and 1.2, play vars, and a plaintext password the scanner flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CANARY
from tests.migrate.conftest import read_back

VALUES = {
    "inline": "pässwörd with spaces \u2713 and a trailing newline\n",
    "crlf": "line one\r\nline two",
    "ops_user": "ops-admin-7Gq2",
    "ops_token": "tok-Hj3kL9mN2pQ8rS",
    "legacy": "legacy-Secret-Zz91-x",
    "play": "play-level-vault-Qq7",
    "plaintext": "Xq9!vR2#mZ7pL4sT",
}
for _value in VALUES.values():
    CANARY.remember(_value)
BLOB = bytes(range(256)) * 3 + b"\xff\xfe"


def ansible_vault(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    exe = Path(sys.executable).parent / "ansible-vault"
    assert exe.is_file(), "ansible-core (a test dependency) provides ansible-vault"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(cwd / "none.cfg")
    done = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def encrypt_string(name: str, value: str, vault_args: list[str], cwd: Path) -> str:
    out = ansible_vault(
        "encrypt_string", *vault_args, "--stdin-name", name, cwd=cwd, input=value.encode()
    )
    return out.decode()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ansible-tree")
    keys = root / "keys"
    keys.mkdir()
    (keys / "web.txt").write_text("  web-pass-1  \n")  # surrounding whitespace is stripped
    (keys / "legacy.txt").write_text("legacy-pass-2\n")
    script = keys / "ops-client.py"  # Ansible's client-script protocol: --vault-id <label>
    script.write_text(
        "#!" + sys.executable + "\nimport sys\n"
        "assert sys.argv[1:] == ['--vault-id', 'ops'], sys.argv\nprint('ops-pass-3')\n"
    )
    script.chmod(0o700)
    web = ["--vault-id", f"web@{keys / 'web.txt'}", "--encrypt-vault-id", "web"]
    ops = ["--vault-id", f"ops@{script}", "--encrypt-vault-id", "ops"]
    legacy = ["--vault-password-file", str(keys / "legacy.txt")]

    (root / "group_vars").mkdir()
    web_vars = (
        "app_port: 8080\n"
        f'db_password: "{VALUES["plaintext"]}"\n'
        + encrypt_string("inline_secret", VALUES["inline"], web, root)
        + encrypt_string("crlf_secret", VALUES["crlf"], web, root)
    )
    (root / "group_vars" / "web.yml").write_bytes(web_vars.replace("\n", "\r\n").encode())

    host = root / "host_vars" / "db1"
    host.mkdir(parents=True)
    (host / "vault.yml").write_text(
        f"ops:\n  user: {VALUES['ops_user']}\n  tokens:\n    - {VALUES['ops_token']}\n  port: 5432\n  enabled: yes\n"
    )
    ansible_vault("encrypt", *ops, str(host / "vault.yml"), cwd=root)

    (root / "vars").mkdir()
    (root / "vars" / "legacy.yml").write_text(f"legacy_secret: {VALUES['legacy']}\n")
    ansible_vault("encrypt", *legacy, str(root / "vars" / "legacy.yml"), cwd=root)

    (root / "files").mkdir()
    (root / "files" / "blob.bin").write_bytes(BLOB)
    ansible_vault("encrypt", *web, str(root / "files" / "blob.bin"), cwd=root)

    play_var = encrypt_string("play_secret", VALUES["play"], web, root)
    (root / "site.yml").write_text(
        "- hosts: web\n  vars:\n"
        + "".join(f"    {line}\n" for line in play_var.splitlines())
        + "  tasks: []\n"
    )
    # The tree's own ansible.cfg names two of the three passwords, ansible-playbook style.
    (root / "ansible.cfg").write_text(
        "[defaults]\nvault_identity_list = web@keys/web.txt\nvault_password_file = keys/legacy.txt\n"
    )
    return root


def test_generated_tree_end_to_end(
    tree: Path, migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    script = tree / "keys" / "ops-client.py"
    planned = json.loads(migrate("plan", "ansible", str(tree), f"--vault-id=ops@{script}").stdout)
    assert planned["errors"] == []
    by_var = {tuple(i["source"]["var_path"] or ()): i for i in planned["items"]}
    plain = by_var[("db_password",)]
    assert plain["origin"] == "plaintext" and plain["plaintext_finding"] == "generic-password"
    assert ("app_port",) not in by_var
    migrate("apply", "ansible", str(tree), f"--vault-id=ops@{script}")

    def value(var_path: tuple[Any, ...]) -> bytes:
        path, _, key = by_var[var_path]["target"].removeprefix("secretsd://").partition("#")
        return read_back(admin, path)[0][key]

    assert value(("inline_secret",)) == VALUES["inline"].encode()
    assert value(("crlf_secret",)) == VALUES["crlf"].encode()
    assert value(("ops", "user")) == VALUES["ops_user"].encode()
    assert value(("ops", "tokens", 0)) == VALUES["ops_token"].encode()
    assert value(("ops", "port")) == b"5432" and value(("ops", "enabled")) == b"true"
    assert value(("legacy_secret",)) == VALUES["legacy"].encode()
    assert value((0, "vars", "play_secret")) == VALUES["play"].encode()
    assert value(("db_password",)) == VALUES["plaintext"].encode()
    assert value(()) == BLOB  # files/blob.bin, byte-exact
    assert by_var[("ops", "user")]["target"] == "secretsd://ansible/db1/ops#user"
    assert (
        by_var[(0, "vars", "play_secret")]["target"]
        == "secretsd://ansible/playbooks/site/play_secret#value"
    )


def test_rewrite_replaces_values_with_lookups(tree: Path, migrate: Any, tmp_path: Path) -> None:
    out = tmp_path / "rewritten"
    script = tree / "keys" / "ops-client.py"
    migrate("plan", "ansible", str(tree), f"--vault-id=ops@{script}", "--rewrite", str(out))
    web = (out / "group_vars" / "web.yml").read_bytes()
    assert b"$ANSIBLE_VAULT" not in web and b"\r\n" in web  # CRLF kept
    import yaml

    loaded = yaml.safe_load(web)
    assert loaded["app_port"] == 8080
    assert (
        loaded["inline_secret"]
        == "{{ lookup('secretsd', 'secretsd://ansible/web/inline_secret#value') }}"
    )
    assert (
        loaded["db_password"]
        == "{{ lookup('secretsd', 'secretsd://ansible/web/db_password#value') }}"
    )
    host = yaml.safe_load((out / "host_vars" / "db1" / "vault.yml").read_text())
    assert host["ops"]["tokens"] == [
        "{{ lookup('secretsd', 'secretsd://ansible/db1/ops#tokens.0') }}"
    ]
    notes = (out / "MIGRATION-NOTES.txt").read_text()
    assert (
        "files/blob.bin" in notes
        and "secretsd get secretsd://ansible/files/blob.bin#content" in notes
    )
    assert not (out / "files" / "blob.bin").exists()
    assert (tree / "group_vars" / "web.yml").read_bytes().count(
        b"$ANSIBLE_VAULT"
    ) == 2  # originals untouched
    for value in VALUES.values():
        for path in out.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes()


def test_decryption_matches_ansible_for_every_file(tree: Path) -> None:
    """Our decryption against ansible-vault's own on every encrypted file of the tree."""
    from secretsd.migrations.vault_crypto import decrypt
    from secretsd.migrations.vault_ids import load_secrets, specs_for_tree

    script = tree / "keys" / "ops-client.py"
    secrets = load_secrets(specs_for_tree(tree, [f"ops@{script}"], cwd=tree))
    for rel in ("host_vars/db1/vault.yml", "vars/legacy.yml", "files/blob.bin"):
        ours, _ = decrypt((tree / rel).read_bytes(), secrets)
        theirs = ansible_vault(
            "decrypt",
            "--output",
            "-",
            "--vault-id",
            f"web@{tree / 'keys/web.txt'}",
            "--vault-id",
            f"ops@{script}",
            "--vault-password-file",
            str(tree / "keys/legacy.txt"),
            str(tree / rel),
            cwd=tree,
        )
        assert ours == theirs, rel
