"""Audit by construction: every /v1 route is authorised and audited by one mechanism."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import text

from secretsd.server.authorize import Authorize
from secretsd.server.deps import AUDIT_MARKER, AUDITED_ELSEWHERE
from tests.conftest import RunningServer

SECRET_ROUTES = ("/v1/secrets/", "/v1/secrets:batch", "/v1/metadata", "/v1/undelete/",
                 "/v1/destroy/", "/v1/resolve", "/v1/values/")  # fmt: skip


def _authorizers(dependant: Any) -> list[Authorize]:
    found = [dependant.call] if isinstance(dependant.call, Authorize) else []
    for sub in dependant.dependencies:
        found += _authorizers(sub)
    return found


def _api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through included routers (FastAPI keeps them nested)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += _api_routes(included.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
    return found


def test_every_v1_route_is_authorised_and_audited(server: RunningServer) -> None:
    uncovered = []
    checked = 0
    for path, route in _api_routes(server.app.routes):
        if not path.startswith("/v1"):
            continue
        checked += 1
        marker = getattr(route.endpoint, AUDIT_MARKER, None)
        authorizers = _authorizers(route.dependant)
        where = f"{sorted(route.methods)} {path}"
        if authorizers:
            assert marker is None, f"{where}: both Authorize and the marker {marker!r}"
            assert len(authorizers) == 1, f"{where}: authorised twice"
        elif marker == "login":
            assert path.endswith("/login"), f"{where}: only logins go unauthenticated"
        elif marker == "secret-decision":
            assert path.startswith(SECRET_ROUTES), f"{where} is not a secret route"
        else:
            uncovered.append(where)
    assert checked >= 30
    assert not uncovered, f"routes neither authorised nor marked audited: {uncovered}"
    assert frozenset({"login", "secret-decision"}) == AUDITED_ELSEWHERE


def _records(admin: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = admin.get(
        "/v1/audit", params={"limit": 1000, **filters}
    ).json()["records"]
    return records


def test_admin_reads_are_audited_allowed_and_denied(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put("/v1/policies/web", json={"rules": [{"path": "apps/**", "capabilities": ["read"]}]})
    nobody = admin.post("/v1/auth/tokens", json={"policies": []}).json()
    calls = [
        ("/v1/policies", "policy-list", "sys/policies"),
        ("/v1/policies/web", "policy-read", "sys/policies/web"),
        ("/v1/auth/kubernetes/config", "kubernetes-config-read", "sys/kubernetes"),
        ("/v1/auth/approle/roles", "approle-list", "sys/approle"),
        ("/v1/auth/tokens", "token-list", "sys/tokens"),
    ]
    for url, _, _ in calls:
        admin.get(url)
        with server.client(nobody["token"]) as client:
            assert client.get(url).status_code == 403
    for _, action, path in calls:
        outcomes = {r["outcome"]: r for r in _records(admin, action=action)}
        assert {"allowed", "denied"} <= set(outcomes), (action, outcomes)
        assert outcomes["denied"]["identity"] == nobody["accessor"]
        assert outcomes["denied"]["path"] == path
        assert outcomes["allowed"]["path"] == path


def test_admin_writes_are_audited_before_they_happen(
    server: RunningServer, admin: httpx.Client
) -> None:
    """With the audit log unable to record, an admin write changes nothing (fail closed)."""
    engine = server.state.engine
    with engine.begin() as connection:
        head = connection.execute(text("SELECT id, last_seq, last_hash FROM audit_head")).one()
        connection.execute(text("DELETE FROM audit_head"))
    try:
        refused = admin.put(
            "/v1/policies/late", json={"rules": [{"path": "x/**", "capabilities": ["read"]}]}
        )
        assert refused.status_code == 503, refused.text
        assert admin.post("/v1/auth/tokens", json={"policies": []}).status_code == 503
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (:i, :s, :h)"),
                {"i": head.id, "s": head.last_seq, "h": head.last_hash},
            )
    assert admin.get("/v1/policies/late").status_code == 404
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tokens")).scalar() == 1
    # Requested before, done after, both naming the caller; an error is recorded too.
    admin.put("/v1/policies/late", json={"rules": [{"path": "x/**", "capabilities": ["read"]}]})
    admin.put("/v1/policies/bad", json={"rules": [{"path": "/x", "capabilities": ["read"]}]})
    assert admin.put("/v1/policies/bad", json={"rulez": []}).status_code == 422
    writes = _records(admin, action="policy-write")
    assert [(r["path"], r["outcome"], r["detail"]) for r in writes] == [
        ("sys/policies/late", "allowed", "requested"),
        ("sys/policies/late", "allowed", "created"),
        ("sys/policies/bad", "allowed", "requested"),
        ("sys/policies/bad", "error", "validation_failed"),
        ("sys/policies/bad", "allowed", "requested"),
        ("sys/policies/bad", "error", "validation_failed"),
    ]
    created = admin.post("/v1/auth/tokens", json={"policies": []}).json()
    done = _records(admin, action="token-create")[-1]
    assert done["path"] == f"sys/tokens/{created['accessor']}" and done["detail"] == "done"


def test_odd_path_parameters_are_decided_and_recorded_safely(
    server: RunningServer, admin: httpx.Client
) -> None:
    """Decided on exactly what the handler would act on, or refused before deciding."""
    long = "a" * 5000
    assert admin.get(f"/v1/auth/tokens/accessors/{long}").status_code == 422
    odd = admin.get("/v1/auth/tokens/accessors/x%0Ay%2A")
    assert odd.status_code == 422 and "not valid" in odd.json()["error"]["message"]
    records = _records(admin, action="token-lookup")
    assert [(r["path"], r["outcome"]) for r in records] == [
        (f"sys/tokens/{'a' * 64}", "error"),
        ("sys/tokens/x_y_", "error"),
    ]
