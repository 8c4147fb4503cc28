"""Writes with provenance in one call, and ``POST /v1/secrets:batch`` (issue 10: importers).

A batch is many single writes in one request: each is authorised, audited
(requested, then its outcome) and check-and-set on its own, so a denied or
conflicting write fails alone; a malformed batch is refused whole, writing
nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import secretsd
from secretsd.client import Client, SecretWrite
from secretsd.server.schemas import MAX_BATCH_WRITES
from tests.conftest import ADMIN_TOKEN, RunningServer


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url, ADMIN_TOKEN, auto_renew=False) as sdk:
        yield sdk


def _records(admin: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = admin.get(
        "/v1/audit", params={"limit": 1000, **filters}
    ).json()["records"]
    return records


def test_a_write_carries_its_provenance_in_the_same_call(client: Client) -> None:
    provenance = {"secretsd-migrate-plan": "p1", "secretsd-migrate-source": "ansible:a.yml"}
    assert client.put("imports/one/db", {"password": "pw-prov-1"}, custom_metadata=provenance) == 1
    assert dict(client.metadata("imports/one/db").custom_metadata) == provenance
    # Merged into what is there on the next write; '' removes a key.
    client.put(
        "imports/one/db",
        {"password": "pw-prov-2"},
        cas=1,
        custom_metadata={"secretsd-migrate-plan": "p2", "secretsd-migrate-source": ""},
    )
    meta = client.metadata("imports/one/db")
    assert dict(meta.custom_metadata) == {"secretsd-migrate-plan": "p2"}
    assert meta.current_version == 2
    # A refused write changes neither the data nor the metadata.
    with pytest.raises(secretsd.CasMismatch):
        client.put("imports/one/db", {"password": "pw-prov-3"}, cas=1, custom_metadata={"x": "y"})
    client.invalidate()
    latest = client.read("imports/one/db")
    assert latest.version == 2 and dict(latest.custom_metadata) == {"secretsd-migrate-plan": "p2"}


def test_put_many_writes_each_alone_with_its_own_check_and_set(
    server: RunningServer, admin: httpx.Client, client: Client
) -> None:
    client.put("batch/exists", {"k": "old-batch-value"})
    keystore = bytes(range(256))
    results = client.put_many(
        [
            SecretWrite("batch/a", {"password": "batch-pw-a"}, cas=0, custom_metadata={"m": "a"}),
            SecretWrite("batch/bin", {"jks": keystore, "alias": "web"}, cas=0),
            SecretWrite("batch/exists", {"k": "batch-new-value"}, cas=0),  # create-only: refused
        ],
        raise_errors=False,
    )
    assert [(r.path, r.version, r.ok) for r in results] == [
        ("batch/a", 1, True),
        ("batch/bin", 1, True),
        ("batch/exists", 0, False),
    ]
    assert isinstance(results[2].error, secretsd.CasMismatch)
    assert client.get("secretsd://batch/a#password") == "batch-pw-a"
    assert dict(client.metadata("batch/a").custom_metadata) == {"m": "a"}
    assert client.get_bytes("secretsd://batch/bin#jks") == keystore
    assert client.get("secretsd://batch/exists#k") == "old-batch-value"
    # raise_errors (the default) raises the first failure, after the others were written.
    with pytest.raises(secretsd.CasMismatch):
        client.put_many(
            [
                SecretWrite("batch/exists", {"k": "x-batch"}, cas=5),
                SecretWrite("batch/c", {"k": "c1"}),
            ]
        )
    assert client.get("secretsd://batch/c#k") == "c1"
    # Each write is audited like a single PUT: requested, then its outcome.
    writes = [(r["path"], r["outcome"], r["detail"]) for r in _records(admin, action="write")]
    assert ("batch/a", "allowed", "requested") in writes
    assert ("batch/a", "allowed", "") in writes
    assert ("batch/exists", "error", "cas_mismatch") in writes
    assert ("batch/c", "allowed", "") in writes


def test_a_batch_authorises_every_write_on_its_own(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put(
        "/v1/policies/team-a", json={"rules": [{"path": "team-a/**", "capabilities": ["write"]}]}
    )
    issued = server.state.tokens.create(policies=["team-a"], display_name="team-a-importer")
    with Client(server.url, issued.token, auto_renew=False) as team:
        results = team.put_many(
            [
                SecretWrite("team-a/db", {"password": "team-a-pw"}),
                SecretWrite("team-b/db", {"password": "team-b-pw"}),
            ],
            raise_errors=False,
        )
    assert results[0].ok and results[0].version == 1
    assert isinstance(results[1].error, secretsd.Forbidden)
    assert admin.get("/v1/secrets/team-b/db").status_code == 404
    denied = _records(admin, action="write", outcome="denied")
    assert [(r["path"], r["identity"]) for r in denied] == [("team-b/db", issued.info.accessor)]


def test_a_malformed_batch_is_refused_whole(admin: httpx.Client, client: Client) -> None:
    def batch(writes: list[dict[str, Any]]) -> httpx.Response:
        return admin.post("/v1/secrets:batch", json={"writes": writes})

    one = {"path": "bad/ok", "data": {"k": "v-bad-batch"}}
    too_many = batch(
        [{"path": f"bad/n{i}", "data": {"k": "v"}} for i in range(MAX_BATCH_WRITES + 1)]
    )
    assert too_many.status_code == 422
    assert f"at most {MAX_BATCH_WRITES}" in too_many.json()["error"]["message"]
    twice = batch([one, {**one, "data": {"k": "other"}}])
    assert twice.status_code == 422 and "writes[1]" in twice.json()["error"]["message"]
    reserved = batch([one, {"path": "sys/policies/x", "data": {"k": "v"}}])
    assert reserved.status_code == 400  # as PUT /v1/secrets/sys/... answers
    assert "writes[1]" in reserved.json()["error"]["message"]
    assert "nothing in this batch was written" in reserved.json()["error"]["message"]
    binary = batch([{**one, "binary_keys": ["k"], "data": {"k": "not base64!"}}])
    assert binary.status_code == 422
    assert batch([]).status_code == 422
    long_key = batch([{**one, "custom_metadata": {"k" * 129: "v"}}])
    assert long_key.status_code == 422 and "1 to 128 characters" in long_key.text
    assert admin.get("/v1/secrets/bad/ok").status_code == 404
    assert admin.get("/v1/metadata/bad", params={"list": "true"}).json()["keys"] == []
    # The SDK splits a long list into batches the service accepts.
    writes = [
        SecretWrite(f"many/s{i:03d}", {"k": f"many-{i:03d}"}) for i in range(MAX_BATCH_WRITES + 5)
    ]
    assert [r.version for r in client.put_many(writes)] == [1] * (MAX_BATCH_WRITES + 5)
    encoded = base64.b64encode(b"many-254").decode()
    assert base64.b64encode(client.get_bytes(f"secretsd://many/s{254:03d}#k")).decode() == encoded
