"""Pure pieces: strict base64, vault decryption against ansible-core's own code, vault-id
resolution, target mapping, and the batch comparison against per-secret reads."""

from __future__ import annotations

import filecmp
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secretsd.migrations.ansible import place
from secretsd.migrations.kube import Base64Invalid, strict_b64decode
from secretsd.migrations.mapping import Mapper, load_rules
from secretsd.migrations.model import Imported, Source
from secretsd.migrations.vault_crypto import VaultError, VaultSecret, decrypt, parse_envelope
from secretsd.migrations.vault_ids import load_secrets, specs_for_tree

from secretsd.errors import ConfigError, InvalidInput
from tests.conftest import ADMIN_TOKEN, RunningServer
from tests.migrate.conftest import FIXTURES

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "migrate"


def test_fixture_copy_is_identical_to_shared() -> None:
    """The suite tests a copy (so it runs without ../shared); when ../shared is there
    (CI puts it beside the clone), the copy must be byte-identical."""
    assert (FIXTURES / "expected.json").is_file()
    if not SHARED.is_dir():
        return
    ours = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(SHARED) for p in SHARED.rglob("*") if p.is_file())
    assert ours == theirs
    _match, mismatch, errors = filecmp.cmpfiles(
        FIXTURES, SHARED, [str(p) for p in ours], shallow=False
    )
    assert not mismatch and not errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("Zg==", b"f"),
        ("Zm8=", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm\r\n9v", b"foo"),  # CR/LF ignored, as Go's StdEncoding does
        ("Zm9v\n", b"foo"),
    ],
)
def test_strict_base64_accepts(text: str, expected: bytes) -> None:
    assert strict_b64decode(text) == expected


@pytest.mark.parametrize(
    "text",
    ["Zg", "Zg=", "Zm9v!", "Zm 9v", "Zm9v\t", "Z===", "Zg==Zg==", "Zm9v=", "c2VjcmV0*!$", "Zg-_"],
)
def test_strict_base64_refuses(text: str) -> None:
    with pytest.raises(Base64Invalid):
        strict_b64decode(text)


@settings(max_examples=25, deadline=None)
@given(
    plaintext=st.binary(max_size=300).filter(lambda b: b"$ANSIBLE_VAULT" not in b),
    label=st.sampled_from([None, "dev", "ops-1"]),
)
def test_decrypt_equals_ansible_core(plaintext: bytes, label: str | None) -> None:
    """Encrypt with ansible-core's VaultLib (the code ansible-vault runs), decrypt with ours."""
    from ansible.parsing.vault import VaultLib
    from ansible.parsing.vault import VaultSecret as AnsibleSecret

    password = b"p\xc3\xa4ss-" + (label or "x").encode()
    vault = VaultLib([(label or "default", AnsibleSecret(password))])
    text = vault.encrypt(plaintext, AnsibleSecret(password), vault_id=label)
    envelope = parse_envelope(text)
    assert envelope.version == ("1.2" if label else "1.1") and envelope.label == label
    others = [VaultSecret("other", b"wrong"), VaultSecret(label or "default", password)]
    assert decrypt(text, others)[0] == plaintext
    with pytest.raises(VaultError) as caught:
        decrypt(text, [VaultSecret("x", b"wrong")])
    expected = "vault_no_matching_secret" if label else "vault_decrypt_failed"
    assert caught.value.code == expected


def test_tampered_ciphertext_fails_hmac_before_decryption() -> None:
    import binascii

    from ansible.parsing.vault import VaultLib
    from ansible.parsing.vault import VaultSecret as AnsibleSecret

    secret = AnsibleSecret(b"pw")
    text = VaultLib([("dev", secret)]).encrypt(b"top secret value", secret, vault_id="dev")
    lines = text.splitlines()
    inner = binascii.unhexlify(b"".join(lines[1:])).split(b"\n")
    cipher = bytearray(binascii.unhexlify(inner[2]))
    cipher[-1] ^= 0x01
    inner[2] = binascii.hexlify(bytes(cipher))
    forged = lines[0] + b"\n" + binascii.hexlify(b"\n".join(inner))
    with pytest.raises(VaultError) as caught:
        decrypt(forged, [VaultSecret("dev", b"pw")])
    assert caught.value.code == "vault_decrypt_failed"
    # Truncated: a format error, not a decryption attempt.
    for cut in (5, 6, 7, 8, 40):
        with pytest.raises(VaultError) as caught:
            decrypt(text[:-cut], [VaultSecret("dev", b"pw")])
        assert caught.value.code == "vault_format_error", cut


def test_vault_ids_resolve_like_ansible_playbook(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "a.txt").write_text("  alpha \n")
    (tmp_path / "b.txt").write_text("beta")
    script = tmp_path / "plain-script.sh"
    script.write_text("#!/bin/sh\n[ $# -eq 0 ] && echo gamma\n")
    script.chmod(0o700)
    (tmp_path / "cfg" / "ansible.cfg").write_text(
        "[defaults]\nvault_identity_list = a@a.txt\nvault_password_file = a.txt\n"
    )
    specs = specs_for_tree(
        tmp_path / "cfg", [f"s@{script}"], [str(tmp_path / "b.txt")], env={}, cwd=tmp_path
    )
    assert [str(s) for s in specs] == [
        f"a@{tmp_path / 'cfg' / 'a.txt'}",
        f"s@{script}",
        f"default@{tmp_path / 'b.txt'}",  # the flag replaces ansible.cfg's vault_password_file
    ]
    assert [s.password for s in load_secrets(specs)] == [b"alpha", b"gamma", b"beta"]
    env_specs = specs_for_tree(
        tmp_path / "cfg", env={"ANSIBLE_VAULT_IDENTITY_LIST": "e@b.txt"}, cwd=tmp_path
    )
    assert [str(s) for s in env_specs] == [
        f"e@{tmp_path / 'b.txt'}",
        f"default@{tmp_path / 'cfg' / 'a.txt'}",
    ]
    with pytest.raises(ConfigError, match="asks for a password on the terminal"):
        load_secrets(specs_for_tree(tmp_path, ["p@prompt"], env={}, cwd=tmp_path))


def test_default_placement() -> None:
    assert (
        place(PurePosixPath("group_vars/web.yml"), ["db", "password"], inventory=False).path
        == "ansible/web/db"
    )
    hosts = place(
        PurePosixPath("inv.yml"), ["all", "children", "g", "hosts", "h1", "pw"], inventory=True
    )
    assert (hosts.path, hosts.key) == ("ansible/h1/pw", "value")
    group = place(
        PurePosixPath("inv.yml"), ["all", "children", "g", "vars", "pw", 0], inventory=True
    )
    assert (group.path, group.key) == ("ansible/g/pw", "0")
    role = place(PurePosixPath("roles/r/defaults/main.yml"), ["x"], inventory=False)
    assert role.path == "ansible/roles/r/x"
    odd = place(PurePosixPath("vars/my file.yml"), ["wéird key"], inventory=False)
    assert odd.path == "ansible/vars/my-file/w-ird-key"


def _item(**context: str) -> Imported:
    return Imported(
        Source("k8s", "a.yaml", None, "shop", "web", "pw"),
        "k8s",
        "k8s/shop/web",
        "pw",
        "",
        b"x",
        {"namespace": "shop", "name": "web", **context},
    )


def test_rules_file_and_prefix(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n"
        "  - {match: 'k8s:shop/*', target: 'apps/{namespace}/{name}#password'}\n"
        "  - {match: '*', target: 'other/{path}'}\n"
    )
    rules, digest = load_rules(rules_file)
    assert digest.startswith("sha256:")
    assert Mapper(rules).target(_item()) == ("apps/shop/web", "password")
    assert Mapper(rules, "team").target(_item()) == ("team/apps/shop/web", "password")
    rules_file.write_text("rules:\n  - {match: '*', target: 'x/{nope}'}\n")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        load_rules(rules_file)
    rules_file.write_text("rules:\n  - {match: '*', target: 'x/{group}'}\n")
    with pytest.raises(InvalidInput, match=r"uses \{group\}"):
        Mapper(load_rules(rules_file)[0]).target(_item())


def test_batch_comparison_equals_per_secret_reads(server: RunningServer) -> None:
    """The fast path (batch resolves) decides exactly what reading each
    secret would: versions, exact bytes (binary included), absent secrets."""
    from secretsd.migrations.plan import read_targets

    from secretsd import Client, NotFound

    with Client(server.url, ADMIN_TOKEN) as client:
        client.put("cmp/text", {"a": "one", "b": ""})
        client.put("cmp/bin", {"k": b"\xff\x00raw", "t": "txt"})
        client.put("cmp/bin", {"k": b"\xfe\x01raw2"})
        paths = ["cmp/text", "cmp/bin", "cmp/absent"]
        fast = read_targets(client, paths)
        for path in paths:
            try:
                slow = client.read(path)
            except NotFound:
                assert fast[path].version == 0 and dict(fast[path].data) == {}
                continue
            assert fast[path].version == slow.version
            assert dict(fast[path].data) == {k: slow.value_bytes(k) for k in slow.data}
