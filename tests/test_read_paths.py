"""One read decision: the fast path and the route answer every read the same way.

Two servers share one Vault subtree; one answers plain reads below the framework
(``fast_read=True``), the other only through FastAPI (``fast_read=False``). The
same requests (hit, miss, denied, versioned, deleted, binary, not modified, bad
parameters) must give the same status, headers, body and audit records, and a
miss must cost exactly one Vault read.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from secretsd.backends.base import SecretMetadata, SecretVersion
from secretsd.server.fastpath import FastReadMiddleware
from tests.conftest import Bao, RunningServer, make_settings, start_server

RAW = bytes(range(256))
# (name, path and query, extra headers, which token)
REQUESTS: list[tuple[str, str, dict[str, str], str]] = [
    ("miss then fill", "app/db", {}, "reader"),
    ("hit", "app/db", {}, "reader"),
    ("versioned", "app/db?version=1", {}, "reader"),
    ("deleted version", "app/db?version=2", {}, "reader"),
    ("no such version", "app/db?version=99", {}, "reader"),
    ("no such secret", "app/nothing", {}, "reader"),
    ("denied", "other/x", {}, "reader"),
    ("denied missing", "other/none", {}, "reader"),
    ("binary", "app/bin", {}, "reader"),
    ("binary old version", "app/bin?version=1", {}, "reader"),
    ("not modified", "app/db", {"If-None-Match": '"3"'}, "reader"),
    ("modified", "app/db", {"If-None-Match": 'W/"1"'}, "reader"),
    ("version zero", "app/db?version=0", {}, "reader"),
    ("version not a number", "app/db?version=abc", {}, "reader"),
    ("unknown parameter", "app/db?foo=1", {}, "reader"),
    ("reserved path", "sys/x", {}, "reader"),
    ("bad path", "app/bad%20path", {}, "reader"),
    ("no token", "app/db", {}, ""),
    ("unknown token", "app/db", {}, "sdt_unknown-token-0123456789"),
]
IGNORED_HEADERS = {"date", "server"}
AUDIT_FIELDS = "action, outcome, path, version, display_name, method, client, request_id, detail"


class CountingBackend:
    """The real backend, counting the reads the service makes (no behaviour changed)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0
        self.metadata_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def aread(self, path: str, version: int | None = None) -> SecretVersion:
        self.reads += 1
        result: SecretVersion = await self.inner.aread(path, version)
        return result

    async def ametadata(self, path: str) -> SecretMetadata:
        self.metadata_reads += 1
        result: SecretMetadata = await self.inner.ametadata(path)
        return result


def fast_path_of(server: RunningServer) -> FastReadMiddleware:
    node: Any = server.app.middleware_stack
    while node is not None:
        if isinstance(node, FastReadMiddleware):
            return node
        node = getattr(node, "app", None)
    raise AssertionError("no FastReadMiddleware in the stack")


def seed(admin: httpx.Client) -> None:
    for value in ("one", "two", "three"):
        admin.put("/v1/secrets/app/db", json={"data": {"password": value, "user": "web"}})
    admin.delete("/v1/secrets/app/db", params={"versions": "2"})
    encoded = base64.b64encode(RAW).decode()
    admin.put("/v1/secrets/app/bin", json={"data": {"jks": encoded}, "binary_keys": ["jks"]})
    admin.put("/v1/secrets/app/bin", json={"data": {"jks": "text now"}})
    admin.put("/v1/secrets/other/x", json={"data": {"k": "not yours"}})


def reader_token(server: RunningServer, admin: httpx.Client) -> str:
    rules = [{"path": "app/*", "capabilities": ["read"]}]
    assert admin.put("/v1/policies/app-reader", json={"rules": rules}).status_code == 200
    issued = admin.post(
        "/v1/auth/tokens", json={"policies": ["app-reader"], "display_name": "reader"}
    )
    return str(issued.json()["token"])


def audit_rows(server: RunningServer, after: int) -> list[tuple[Any, ...]]:
    with server.state.engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(f"SELECT {AUDIT_FIELDS} FROM audit_log WHERE seq > :s ORDER BY seq"),
            {"s": after},
        ).all()
    return [tuple(row) for row in rows]


def last_seq(server: RunningServer) -> int:
    with server.state.engine.connect() as connection:
        return int(connection.execute(sqlalchemy.text("SELECT MAX(seq) FROM audit_log")).scalar())


def run(server: RunningServer, token: str) -> list[dict[str, Any]]:
    answers = []
    for name, target, headers, who in REQUESTS:
        sent = {"X-Request-Id": f"req-{len(answers)}", **headers}
        if who == "reader":
            sent["Authorization"] = f"Bearer {token}"
        elif who:
            sent["Authorization"] = f"Bearer {who}"
        answer = httpx.get(f"{server.url}/v1/secrets/{target}", headers=sent, timeout=30)
        answers.append(
            {
                "name": name,
                "status": answer.status_code,
                "headers": {
                    k: v for k, v in answer.headers.items() if k.lower() not in IGNORED_HEADERS
                },
                "body": answer.content,
            }
        )
    return answers


@pytest.fixture
def pair(tmp_path: Path, bao: Bao, vault_prefix: str) -> Iterator[tuple[RunningServer, ...]]:
    servers = []
    for name, fast in (("fast", True), ("route", False)):
        settings = make_settings(tmp_path / name, bao, vault_prefix, fast_read=fast, cache_ttl=60)
        servers.append(start_server(settings))
    yield tuple(servers)
    for server in servers:
        server.stop()


def test_fast_path_and_route_answer_and_audit_the_same(pair: tuple[RunningServer, ...]) -> None:
    fast, route = pair
    with fast.client() as admin:
        seed(admin)
    results: dict[Any, Any] = {}
    for name, server in (("fast", fast), ("route", route)):
        with server.client() as admin:
            token = reader_token(server, admin)
            assert admin.get("/v1/auth/tokens/self").status_code == 200
        # Warm the reader's identity in this worker (the fast path never looks tokens up).
        httpx.get(f"{server.url}/v1/secrets/app/warm", headers={"Authorization": f"Bearer {token}"})
        before = last_seq(server)
        answered_before = fast_path_of(server).answered
        answers = run(server, token)
        results[name] = (answers, audit_rows(server, before))
        results[name, "fast"] = fast_path_of(server).answered - answered_before
    fast_answers, fast_audit = results["fast"]
    route_answers, route_audit = results["route"]
    for mine, theirs in zip(fast_answers, route_answers, strict=True):
        assert mine == theirs, f"{mine['name']}: the fast path and the route disagree"
    assert fast_audit == route_audit
    # The comparison meant something: the fast path answered most requests itself...
    assert results["fast", "fast"] >= 11
    assert results["route", "fast"] == 0
    # ...including the binary version whose bytes must come back exactly.
    binary = next(a for a in fast_answers if a["name"] == "binary old version")
    assert (
        base64.b64decode(httpx.Response(200, content=binary["body"]).json()["data"]["jks"]) == RAW
    )
    statuses = {a["name"]: a["status"] for a in fast_answers}
    assert statuses["hit"] == 200 and statuses["denied"] == 403
    assert statuses["no such secret"] == 404 and statuses["not modified"] == 304
    assert statuses["deleted version"] == 404 and statuses["version zero"] == 422
    assert statuses["no token"] == 401


def test_a_miss_costs_one_vault_read(pair: tuple[RunningServer, ...]) -> None:
    fast, route = pair
    with fast.client() as admin:
        admin.put("/v1/secrets/app/one", json={"data": {"k": "v"}})
    for server in (fast, route):
        counting = CountingBackend(server.state.secrets.backend)
        server.state.secrets.backend = counting
        with server.client() as admin:
            admin.get("/v1/secrets/app/warm-up")  # the identity is now known to this worker
            counting.reads = 0
            assert admin.get("/v1/secrets/app/absent").status_code == 404
            assert counting.reads == 1, "a miss must cost one Vault read"
            assert admin.get("/v1/secrets/app/one").status_code == 200
            assert counting.reads == 2  # a cold read: one more
            assert admin.get("/v1/secrets/app/one").status_code == 200
            assert counting.reads == 2  # a cached read: none
            assert counting.metadata_reads == 0
