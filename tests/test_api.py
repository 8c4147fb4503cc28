"""The HTTP API v1 against a real server, real OpenBao and a real database."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from secretsd.db.models import AuditRecord
from tests.conftest import RunningServer

SENTINEL = "canary-Zq8v-value-must-never-leak"


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


def audit_rows(server: RunningServer) -> list[Any]:
    table = AuditRecord.__table__
    with server.state.engine.connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.seq)).all())


def test_write_read_etag_and_versions(admin: httpx.Client) -> None:
    put = admin.put("/v1/secrets/apps/web/db", json={"data": {"password": SENTINEL}})
    assert put.status_code == 200
    assert put.json() == {"path": "apps/web/db", "version": 1}
    admin.put("/v1/secrets/apps/web/db", json={"data": {"password": "second", "user": "app"}})

    read = admin.get("/v1/secrets/apps/web/db")
    assert read.status_code == 200
    body = read.json()
    assert body["version"] == 2
    assert body["data"] == {"password": "second", "user": "app"}
    assert set(body) == {"path", "version", "data", "metadata", "binary_keys"}
    assert read.headers["etag"] == '"2"'
    assert read.headers["x-request-id"]

    assert admin.get("/v1/secrets/apps/web/db", headers={"If-None-Match": '"2"'}).status_code == 304
    assert admin.get("/v1/secrets/apps/web/db", headers={"If-None-Match": '"1"'}).status_code == 200
    old = admin.get("/v1/secrets/apps/web/db", params={"version": 1})
    assert old.json()["data"] == {"password": SENTINEL}
    assert old.headers["etag"] == '"1"'

    missing = admin.get("/v1/secrets/apps/web/nothing")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_check_and_set_conflict(admin: httpx.Client) -> None:
    assert admin.put("/v1/secrets/cas", json={"data": {"k": "v"}, "cas": 0}).status_code == 200
    conflict = admin.put("/v1/secrets/cas", json={"data": {"k": "w"}, "cas": 0})
    assert conflict.status_code == 409
    assert error_of(conflict)["code"] == "cas_mismatch"
    assert admin.get("/v1/secrets/cas").json()["data"] == {"k": "v"}
    assert admin.put("/v1/secrets/cas", json={"data": {"k": "w"}, "cas": 1}).json()["version"] == 2


def test_patch_delete_undelete_destroy(admin: httpx.Client) -> None:
    admin.put("/v1/secrets/p", json={"data": {"a": "1", "b": "2"}})
    patched = admin.patch("/v1/secrets/p", json={"data": {"b": None, "c": "3"}})
    assert patched.json()["version"] == 2
    assert admin.get("/v1/secrets/p").json()["data"] == {"a": "1", "c": "3"}

    assert admin.delete("/v1/secrets/p").status_code == 204
    gone = admin.get("/v1/secrets/p")
    assert gone.status_code == 404 and "deleted" in error_of(gone)["message"]
    assert admin.post("/v1/undelete/p", json={"versions": [2]}).status_code == 204
    assert admin.get("/v1/secrets/p").json()["version"] == 2

    assert admin.post("/v1/destroy/p", json={"versions": [1]}).status_code == 204
    destroyed = admin.get("/v1/secrets/p", params={"version": 1})
    assert destroyed.status_code == 404 and "destroyed" in error_of(destroyed)["message"]
    assert (
        admin.delete("/v1/secrets/p", params={"versions": "2", "destroy": "true"}).status_code
        == 204
    )
    assert admin.get("/v1/secrets/p").status_code == 404

    versions = admin.get("/v1/metadata/p").json()["versions"]
    assert [(v["version"], v["destroyed"]) for v in versions] == [(1, True), (2, True)]
    assert admin.delete("/v1/metadata/p").status_code == 204
    assert admin.get("/v1/metadata/p").status_code == 404


def test_metadata_and_listing(admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/web/db", json={"data": {"k": "v"}})
    admin.put("/v1/secrets/apps/web/api", json={"data": {"k": "v"}})
    admin.put("/v1/secrets/top", json={"data": {"k": "v"}})
    assert admin.get("/v1/metadata/apps/web", params={"list": "true"}).json() == {
        "keys": ["api", "db"]
    }
    assert admin.get("/v1/metadata", params={"list": "true"}).json() == {"keys": ["apps/", "top"]}
    update = admin.put(
        "/v1/metadata/apps/web/db",
        json={"custom_metadata": {"imported-from": "ansible:group_vars/all/vault.yml"}},
    )
    assert update.status_code == 204
    meta = admin.get("/v1/metadata/apps/web/db").json()
    assert meta["custom_metadata"] == {"imported-from": "ansible:group_vars/all/vault.yml"}
    assert meta["current_version"] == 1
    assert admin.get("/v1/secrets/apps/web/db").json()["metadata"]["custom_metadata"] == {
        "imported-from": "ansible:group_vars/all/vault.yml"
    }


def test_binary_values(admin: httpx.Client) -> None:
    raw = bytes(range(200, 256)) + b"\x00\xff"
    encoded = base64.b64encode(raw).decode()
    admin.put("/v1/secrets/bin", json={"data": {"p12": encoded}, "binary_keys": ["p12"]})
    body = admin.get("/v1/secrets/bin").json()
    assert body["binary_keys"] == ["p12"]
    assert base64.b64decode(body["data"]["p12"]) == raw
    bad = admin.put("/v1/secrets/bin", json={"data": {"p12": "%%%"}, "binary_keys": ["p12"]})
    assert bad.status_code == 422
    assert "not valid base64" in error_of(bad)["message"]


def test_resolve_many_with_per_reference_errors(admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/web/db", json={"data": {"password": "pw1", "user": "u"}})
    admin.put("/v1/secrets/apps/web/db", json={"data": {"password": "pw2", "user": "u"}})
    refs = [
        "secretsd://apps/web/db#password",
        "secretsd://apps/web/db?version=1#password",
        "secretsd://apps/web/db",
        "secretsd://apps/web/db#missing",
        "secretsd://apps/none#x",
        "secretsd://bad//ref",
        "not-a-reference-value",
    ]
    results = admin.post("/v1/resolve", json={"refs": refs}).json()["results"]
    assert results[0]["value"] == "pw2" and results[0]["version"] == 2
    assert results[1]["value"] == "pw1" and results[1]["version"] == 1
    assert results[2]["data"] == {"password": "pw2", "user": "u"}
    assert (
        results[3]["error"]["code"] == "not_found"
        and "no key 'missing'" in results[3]["error"]["message"]
    )
    assert results[4]["error"]["code"] == "not_found"
    assert results[5]["error"]["code"] == "invalid_reference"
    assert results[6]["error"]["code"] == "invalid_reference"
    assert "not-a-reference-value" not in str(results[6])


def test_bad_input_gets_clear_errors_and_changes_nothing(
    admin: httpx.Client, server: RunningServer
) -> None:
    admin.put("/v1/secrets/keep", json={"data": {"k": "v"}})
    cases = [
        (admin.put("/v1/secrets/keep", json={"data": {}}), 422, "data is empty"),
        (admin.put("/v1/secrets/keep", json={"data": {"bad key": "v"}}), 422, "contains ' '"),
        (admin.put("/v1/secrets/keep", json={"data": {"k": 1}}), 422, "data.k"),
        (
            admin.put("/v1/secrets/keep", json={"data": {"k": "v"}, "extra": 1}),
            422,
            "unknown field",
        ),
        (
            admin.put(
                "/v1/secrets/keep",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            422,
            "not valid JSON",
        ),
        (admin.put("/v1/secrets/keep", content=b"data=x"), 422, "Content-Type: application/json"),
        (admin.put("/v1/secrets/a//b", json={"data": {"k": "v"}}), 400, "segment 2 is empty"),
        (admin.get("/v1/secrets/a/../b"), 404, ""),
        (admin.get("/v1/secrets/keep", params={"version": 0}), 422, "version"),
        (admin.delete("/v1/secrets/keep", params={"versions": "x"}), 422, "comma-separated"),
        (admin.get("/v1/nowhere"), 404, "no such endpoint"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, (response.status_code, response.text)
        assert fragment in error_of(response)["message"]
    huge = admin.put(
        "/v1/secrets/keep", json={"data": {"k": "x" * (server.settings.max_body_bytes + 10)}}
    )
    assert huge.status_code == 413
    assert error_of(huge)["code"] == "payload_too_large"
    assert admin.get("/v1/secrets/keep").json() == admin.get("/v1/secrets/keep").json()
    assert admin.get("/v1/secrets/keep").json()["version"] == 1


def test_authentication_and_authorisation(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        missing = anonymous.get("/v1/secrets/x")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "missing Authorization header" in error_of(missing)["message"]
        wrong = anonymous.get("/v1/secrets/x", headers={"Authorization": "Basic abc"})
        assert "malformed" in error_of(wrong)["message"]
        unknown = anonymous.get("/v1/secrets/x", headers={"Authorization": "Bearer sdt_nope"})
        assert unknown.status_code == 401
        assert "the token is unknown" in error_of(unknown)["message"]
    issued = server.state.tokens.create(policies=[], display_name="nobody")
    with server.client(issued.token) as nobody:
        denied = nobody.get("/v1/secrets/apps/web/db")
        assert denied.status_code == 403
        assert error_of(denied)["code"] == "forbidden"
        assert nobody.put("/v1/secrets/x", json={"data": {"k": "v"}}).status_code == 403
        resolved = nobody.post("/v1/resolve", json={"refs": ["secretsd://x#k"]}).json()
        assert resolved["results"][0]["error"]["code"] == "forbidden"
    # Health and metrics need no token.
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json()["status"] == "ready"
        assert "secretsd_http_requests_total" in anonymous.get("/metrics").text
        assert anonymous.get("/openapi.json").json()["info"]["title"] == "secretsd"
        assert anonymous.get("/docs").status_code == 200


def test_audit_records_every_access_without_values(
    admin: httpx.Client, server: RunningServer
) -> None:
    admin.put("/v1/secrets/audited", json={"data": {"password": SENTINEL}})
    admin.get("/v1/secrets/audited")
    admin.get("/v1/secrets/audited", headers={"If-None-Match": '"1"'})
    admin.get("/v1/secrets/missing")
    with httpx.Client(base_url=server.url) as anonymous:
        anonymous.get("/v1/secrets/audited", headers={"Authorization": "Bearer sdt_wrong"})
    rows = audit_rows(server)
    summary = [(r.action, r.path, r.outcome, r.version) for r in rows]
    assert ("write", "audited", "allowed", None) in summary  # before the write
    assert ("write", "audited", "allowed", 1) in summary  # after, with the version
    assert ("read", "audited", "allowed", 1) in summary
    assert ("check", "audited", "allowed", 1) in summary
    assert ("read", "missing", "error", None) in summary
    assert ("authenticate", "audited", "denied", None) in summary
    admin_rows = [r for r in rows if r.action == "read"]
    assert all(r.identity and r.client == "127.0.0.1" and r.request_id for r in admin_rows)
    for row in rows:
        text = " ".join(str(value) for value in row)
        assert SENTINEL not in text
        assert server.token not in text


def test_long_poll_returns_on_change_and_times_out(
    admin: httpx.Client, server: RunningServer
) -> None:
    admin.put("/v1/secrets/watched", json={"data": {"k": "1"}})
    timed_out = admin.get("/v1/secrets/watched", params={"wait": 0.3, "after": 1})
    assert timed_out.status_code == 304
    assert timed_out.headers["etag"] == '"1"'

    def write_later() -> None:
        time.sleep(0.3)
        with server.client() as other:
            other.put("/v1/secrets/watched", json={"data": {"k": "2"}})

    writer = threading.Thread(target=write_later)
    started = time.monotonic()
    writer.start()
    changed = admin.get("/v1/secrets/watched", params={"wait": 10, "after": 1})
    elapsed = time.monotonic() - started
    writer.join()
    assert changed.status_code == 200
    assert changed.json()["version"] == 2 and changed.json()["data"] == {"k": "2"}
    assert elapsed < 1.5
    # If-None-Match works as "after" too, and an already-newer version returns at once.
    quick = admin.get("/v1/secrets/watched", params={"wait": 5}, headers={"If-None-Match": '"1"'})
    assert quick.status_code == 200 and quick.json()["version"] == 2
    bad = admin.get("/v1/secrets/watched", params={"wait": 5, "version": 1})
    assert bad.status_code == 422


def test_waiters_share_one_watcher(admin: httpx.Client, server: RunningServer) -> None:
    admin.put("/v1/secrets/shared", json={"data": {"k": "1"}})
    hub = server.state.watch
    polls_before = hub.vault_polls
    results: list[int] = []

    def wait() -> None:
        with server.client() as client:
            answer = client.get("/v1/secrets/shared", params={"wait": 10, "after": 1})
            results.append(answer.json()["version"])

    waiters = [threading.Thread(target=wait) for _ in range(40)]
    for thread in waiters:
        thread.start()
    deadline = time.monotonic() + 10
    while hub.watched_paths == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.2)  # a couple of watch intervals with 40 waiters
    assert hub.watched_paths == 1
    polls_while_waiting = hub.vault_polls - polls_before
    assert polls_while_waiting <= 5, polls_while_waiting  # ~1 per interval, not 40
    admin.put("/v1/secrets/shared", json={"data": {"k": "2"}})
    for thread in waiters:
        thread.join(10)
    assert results == [2] * 40
    assert hub.watched_paths == 0


def test_an_abandoned_long_poll_releases_its_watcher(
    admin: httpx.Client, server: RunningServer
) -> None:
    admin.put("/v1/secrets/abandoned", json={"data": {"k": "1"}})
    hub = server.state.watch
    with server.client() as client, pytest.raises(httpx.ReadTimeout):
        client.get("/v1/secrets/abandoned", params={"wait": 30, "after": 1}, timeout=0.5)
    deadline = time.monotonic() + 3
    while hub.watched_paths and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hub.watched_paths == 0
