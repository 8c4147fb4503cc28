"""The Vault backend against a real OpenBao: our types in, our types and errors out."""

from __future__ import annotations

import base64

import pytest

from secretsd.backends.base import BINARY_KEYS_DATA, BINARY_KEYS_METADATA, encode_values
from secretsd.backends.vault import VaultAuth, VaultBackend
from secretsd.errors import (
    CasMismatch,
    ConfigError,
    InvalidInput,
    InvalidPath,
    NotFound,
    VaultUnavailable,
)
from tests.conftest import Bao, free_port


@pytest.fixture
def backend(bao: Bao, vault_prefix: str) -> VaultBackend:
    return VaultBackend(bao.addr, VaultAuth(token=bao.root_token), prefix=vault_prefix)


def test_write_read_versions(backend: VaultBackend) -> None:
    assert backend.write("apps/web/db", {"password": "one"}) == 1
    assert backend.write("apps/web/db", {"password": "two", "user": "app"}) == 2
    latest = backend.read("apps/web/db")
    assert (latest.version, dict(latest.data)) == (2, {"password": "two", "user": "app"})
    assert dict(backend.read("apps/web/db", version=1).data) == {"password": "one"}
    assert "two" not in repr(latest)  # values never in a repr
    meta = backend.metadata("apps/web/db")
    assert meta.current_version == 2
    assert [v.version for v in meta.versions] == [1, 2]
    with pytest.raises(NotFound, match="version 9 does not exist"):
        backend.read("apps/web/db", version=9)
    with pytest.raises(NotFound, match="does not exist"):
        backend.read("apps/other")
    with pytest.raises(InvalidPath):
        backend.read("apps//x")


def test_check_and_set(backend: VaultBackend) -> None:
    assert backend.write("c", {"k": "1"}, cas=0) == 1
    with pytest.raises(CasMismatch, match="check-and-set"):
        backend.write("c", {"k": "x"}, cas=0)
    with pytest.raises(CasMismatch):
        backend.write("c", {"k": "x"}, cas=5)
    assert backend.write("c", {"k": "2"}, cas=1) == 2
    assert backend.read("c").data["k"] == "2"  # the failed writes changed nothing


def test_patch_merges_and_removes(backend: VaultBackend) -> None:
    backend.write("p", {"a": "1", "b": "2"})
    assert backend.patch("p", {"b": None, "c": "3"}) == 2
    assert dict(backend.read("p").data) == {"a": "1", "c": "3"}
    with pytest.raises(CasMismatch):
        backend.patch("p", {"a": "x"}, cas=1)
    with pytest.raises(NotFound):
        backend.patch("missing", {"a": "1"})


def test_list_prefix(backend: VaultBackend) -> None:
    backend.write("apps/web/db", {"k": "v"})
    backend.write("apps/web/api", {"k": "v"})
    backend.write("apps/worker", {"k": "v"})
    assert backend.list("apps") == ["web/", "worker"]
    assert backend.list("apps/web") == ["api", "db"]
    assert backend.list("") == ["apps/"]
    assert backend.list("nothing/here") == []


def test_delete_undelete_destroy(backend: VaultBackend) -> None:
    backend.write("d", {"k": "1"})
    backend.write("d", {"k": "2"})
    backend.delete("d")
    with pytest.raises(NotFound, match="is deleted"):
        backend.read("d")
    assert backend.read("d", version=1).data["k"] == "1"
    backend.undelete("d", [2])
    assert backend.read("d").data["k"] == "2"
    backend.destroy("d", [1])
    with pytest.raises(NotFound, match="destroyed"):
        backend.read("d", version=1)
    with pytest.raises(NotFound, match="has no version 7"):
        backend.destroy("d", [7])
    backend.delete_all("d")
    with pytest.raises(NotFound):
        backend.metadata("d")


def test_custom_metadata_merges(backend: VaultBackend) -> None:
    backend.write("m", {"k": "v"})
    backend.update_metadata("m", {"source": "ansible:group_vars/all/vault.yml", "owner": "ops"})
    backend.update_metadata("m", {"owner": ""}, max_versions=5)
    meta = backend.metadata("m")
    assert dict(meta.custom_metadata) == {"source": "ansible:group_vars/all/vault.yml"}
    assert meta.max_versions == 5


def test_binary_values_round_trip(backend: VaultBackend) -> None:
    raw = bytes(range(256))
    data, binary = encode_values({"keystore": raw, "alias": "shop"})
    assert binary == {"keystore"}
    backend.write("bin", data, binary_keys=binary)
    secret = backend.read("bin")
    assert secret.binary_keys == {"keystore"}
    assert secret.value_bytes("keystore") == raw
    assert secret.value_bytes("alias") == b"shop"
    assert set(secret.data) == {"keystore", "alias"}  # the mark is not a user key
    # A later text-only version has no mark...
    backend.write("bin", {"keystore": "now text", "alias": "shop"})
    assert backend.read("bin").binary_keys == frozenset()
    assert backend.read("bin").value_bytes("keystore") == b"now text"
    # ...and the first version still gives back its exact bytes (the mark is per version).
    first = backend.read("bin", version=1)
    assert first.binary_keys == {"keystore"}
    assert first.value_bytes("keystore") == raw
    assert len(first.value_bytes("keystore")) == 256
    # The mark lives in the version itself: no per-secret custom metadata is written.
    assert BINARY_KEYS_METADATA not in backend.metadata("bin").custom_metadata


def test_binary_mark_is_written_atomically_with_the_version(
    backend: VaultBackend, bao: Bao, vault_prefix: str
) -> None:
    import httpx

    data, binary = encode_values({"p12": b"\xff\xfe\x00binary"})
    backend.write("atomic", data, binary_keys=binary)
    stored = httpx.get(
        f"{bao.addr}/v1/secret/data/{vault_prefix}/atomic",
        headers={"X-Vault-Token": bao.root_token},
    ).json()["data"]["data"]
    assert stored[BINARY_KEYS_DATA] == "p12"
    with pytest.raises(InvalidInput, match="reserved"):
        backend.write("atomic", {BINARY_KEYS_DATA: "x"})


def test_versions_with_the_old_per_secret_mark_still_read_as_bytes(
    backend: VaultBackend, bao: Bao, vault_prefix: str
) -> None:
    """Data written before per-version marks: the value, then the mark in custom metadata."""
    import httpx

    raw = bytes(range(255, -1, -1))
    root = {"X-Vault-Token": bao.root_token}
    url = f"{bao.addr}/v1/secret"
    encoded = base64.b64encode(raw).decode()
    httpx.post(
        f"{url}/data/{vault_prefix}/legacy", headers=root, json={"data": {"jks": encoded}}
    ).raise_for_status()
    httpx.post(
        f"{url}/metadata/{vault_prefix}/legacy",
        headers=root,
        json={"custom_metadata": {BINARY_KEYS_METADATA: "jks"}},
    ).raise_for_status()
    assert backend.read("legacy").value_bytes("jks") == raw
    # A new text version written now carries its own (empty) mark and reads as text,
    # while the legacy version keeps its bytes.
    # "abcd1234" is valid base64: only the version number tells it is text.
    backend.write("legacy", {"jks": "abcd1234"})
    assert backend.read("legacy").value_bytes("jks") == b"abcd1234"
    assert backend.read("legacy", version=1).value_bytes("jks") == raw
    backend.write("legacy", {"jks": "efgh5678"})
    assert backend.read("legacy").value_bytes("jks") == b"efgh5678"


def test_bad_credentials_and_unreachable_vault(bao: Bao) -> None:
    wrong = VaultBackend(bao.addr, VaultAuth(token="s.not-a-token"))
    with pytest.raises(VaultUnavailable, match="refused secretsd's token"):
        wrong.login()
    down = VaultBackend(f"http://127.0.0.1:{free_port()}", VaultAuth(token="x"), timeout=1)
    with pytest.raises(VaultUnavailable, match="unreachable"):
        down.read("a")
    assert not down.health().ready
    with pytest.raises(ConfigError, match="no Vault credentials"):
        VaultAuth()


def test_approle_login_and_renewal(bao: Bao, vault_prefix: str) -> None:
    import httpx

    root = {"X-Vault-Token": bao.root_token}
    httpx.post(
        f"{bao.addr}/v1/sys/auth/approle-{vault_prefix}", headers=root, json={"type": "approle"}
    )
    mount = f"approle-{vault_prefix}"
    httpx.post(
        f"{bao.addr}/v1/sys/policies/acl/{vault_prefix}",
        headers=root,
        json={
            "policy": f'path "secret/+/{vault_prefix}/*" {{ capabilities = ["create","read","update","delete","list"] }}'
        },
    ).raise_for_status()
    httpx.post(
        f"{bao.addr}/v1/auth/{mount}/role/sd",
        headers=root,
        json={"token_policies": [vault_prefix], "token_ttl": "60s", "token_max_ttl": "1h"},
    ).raise_for_status()
    role_id = httpx.get(f"{bao.addr}/v1/auth/{mount}/role/sd/role-id", headers=root).json()["data"][
        "role_id"
    ]
    secret_id = httpx.post(f"{bao.addr}/v1/auth/{mount}/role/sd/secret-id", headers=root).json()[
        "data"
    ]["secret_id"]
    backend = VaultBackend(
        bao.addr,
        VaultAuth(role_id=role_id, secret_id=secret_id, approle_mount=mount),
        prefix=vault_prefix,
    )
    backend.write("x", {"k": "v"})
    backend.renew()
    assert backend.read("x").data["k"] == "v"
    # Outside its policy, Vault says 403: secretsd's own misconfiguration -> 503 with a hint.
    other = VaultBackend(
        bao.addr,
        VaultAuth(role_id=role_id, secret_id=secret_id, approle_mount=mount),
        prefix="elsewhere",
    )
    with pytest.raises(VaultUnavailable, match="denied secretsd's own token"):
        other.write("x", {"k": "v"})


def test_a_write_cut_off_after_sending_is_outcome_unknown(bao: Bao, vault_prefix: str) -> None:
    """A real socket that reads the request and hangs up: the write may have landed."""
    import socket
    import threading

    from secretsd.errors import OutcomeUnknown

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    requests_seen: list[bytes] = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            requests_seen.append(connection.recv(65536))
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    backend = VaultBackend(bao.addr, VaultAuth(token=bao.root_token), prefix=vault_prefix)
    backend.login()
    backend.transport.client.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
            backend.write("cut", {"k": "v"})
        assert len(requests_seen) == 1  # sent once, never retried
        assert not backend.known_down  # a dropped connection is not proof Vault is down
        with pytest.raises(VaultUnavailable):
            backend.read("cut")
        assert len(requests_seen) == 3  # a read is sent once more on a dropped connection
    finally:
        listener.close()
        backend.close()
