"""The authorisation matrix: identities x paths x actions, against every secrets route.

The expectations below are written by hand from the policy documents, not
computed by the policy engine, so a wrong decision anywhere shows up as an
unexpected allow or deny.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import RunningServer

POLICIES = {
    "web-reader": [{"path": "apps/web/*", "capabilities": ["read", "list"]}],
    "web-writer": [
        {"path": "apps/web/**", "capabilities": ["read", "write", "delete", "list"]},
        {"path": "apps/web/prod/**", "capabilities": ["deny"]},
    ],
    "ops": [
        {"path": "apps/**", "capabilities": ["read"]},
        {"path": "apps/web/db", "capabilities": ["deny"]},
    ],
}
IDENTITIES = {"admin": None, "reader": ["web-reader"], "writer": ["web-writer"], "ops": ["ops"],
              "nobody": []}  # fmt: skip
PATHS = ["apps/web/db", "apps/web/prod/db", "apps/api/key", "other/x"]

# identity -> path -> the capabilities it must have there (all others must be refused)
EXPECTED: dict[str, dict[str, set[str]]] = {
    "admin": {p: {"read", "write", "delete"} for p in PATHS},
    "reader": {"apps/web/db": {"read"}},
    "writer": {"apps/web/db": {"read", "write", "delete"}},
    "ops": {"apps/web/prod/db": {"read"}, "apps/api/key": {"read"}},
    "nobody": {},
}
# listing a prefix -> what each identity sees (None: refused with 403)
EXPECTED_LISTS: dict[str, dict[str, list[str] | None]] = {
    "": {"admin": ["apps/", "other/"], "reader": ["apps/"], "writer": ["apps/"],
         "ops": None, "nobody": None},
    "apps/web": {"admin": ["db", "prod/"], "reader": ["db"], "writer": ["db"],
                 "ops": None, "nobody": None},
    "apps": {"admin": ["api/", "web/"], "reader": ["web/"], "writer": ["web/"],
             "ops": None, "nobody": None},
}  # fmt: skip

Action = Callable[[httpx.Client, str], httpx.Response]


def resolve(client: httpx.Client, path: str) -> httpx.Response:
    response = client.post("/v1/resolve", json={"refs": [f"secretsd://{path}#k"]})
    result = response.json()["results"][0]
    status = 403 if result.get("error", {}).get("code") == "forbidden" else 200
    return httpx.Response(status, json=result)


ACTIONS: dict[str, tuple[str, Action]] = {
    "read": ("read", lambda c, p: c.get(f"/v1/secrets/{p}")),
    "read-version": ("read", lambda c, p: c.get(f"/v1/secrets/{p}", params={"version": 1})),
    "long-poll": ("read", lambda c, p: c.get(f"/v1/secrets/{p}", params={"wait": 0.05, "after": 99})),
    "resolve": ("read", resolve),
    "metadata": ("read", lambda c, p: c.get(f"/v1/metadata/{p}")),
    "write": ("write", lambda c, p: c.put(f"/v1/secrets/{p}", json={"data": {"k": "w"}})),
    "patch": ("write", lambda c, p: c.patch(f"/v1/secrets/{p}", json={"data": {"k": "p"}})),
    "update-metadata": ("write", lambda c, p: c.put(f"/v1/metadata/{p}", json={"custom_metadata": {"o": "x"}})),
    "undelete": ("write", lambda c, p: c.post(f"/v1/undelete/{p}", json={"versions": [1]})),
    "delete": ("delete", lambda c, p: c.delete(f"/v1/secrets/{p}")),
    "destroy": ("delete", lambda c, p: c.post(f"/v1/destroy/{p}", json={"versions": [1]})),
    "delete-all": ("delete", lambda c, p: c.delete(f"/v1/metadata/{p}")),
}  # fmt: skip


def setup_identities(server: RunningServer, admin: httpx.Client) -> dict[str, httpx.Client]:
    for name, rules in POLICIES.items():
        assert admin.put(f"/v1/policies/{name}", json={"rules": rules}).status_code == 200
    clients = {"admin": admin}
    for name, policies in IDENTITIES.items():
        if policies is None:
            continue
        issued = admin.post(
            "/v1/auth/tokens", json={"policies": policies, "display_name": name, "ttl": "1h"}
        ).json()
        clients[name] = server.client(issued["token"])
    return clients


def reset(admin: httpx.Client) -> None:
    for path in PATHS:
        admin.delete(f"/v1/metadata/{path}")
        assert admin.put(f"/v1/secrets/{path}", json={"data": {"k": "v"}}).status_code == 200


def test_authorisation_matrix(server: RunningServer, admin: httpx.Client) -> None:
    clients = setup_identities(server, admin)
    unexpected: list[str] = []
    checks = 0
    dirty = True
    try:
        for action, (capability, call) in ACTIONS.items():
            for identity, client in clients.items():
                for path in PATHS:
                    if dirty:
                        reset(admin)
                    response = call(client, path)
                    dirty = capability != "read" and response.status_code < 400
                    must_allow = capability in EXPECTED[identity].get(path, set())
                    was_allowed = response.status_code not in (401, 403)
                    checks += 1
                    if was_allowed != must_allow:
                        unexpected.append(
                            f"{identity} {action} {path}: {response.status_code} "
                            f"(expected {'allow' if must_allow else 'deny'})"
                        )
                    elif must_allow:
                        assert response.status_code < 400, (identity, action, path, response.text)
        for prefix, per_identity in EXPECTED_LISTS.items():
            for identity, client in clients.items():
                response = client.get(f"/v1/metadata/{prefix}".rstrip("/"), params={"list": "true"})
                expected = per_identity[identity]
                checks += 1
                if expected is None:
                    if response.status_code != 403:
                        unexpected.append(f"{identity} list {prefix!r}: {response.status_code}")
                elif response.status_code != 200 or response.json()["keys"] != expected:
                    unexpected.append(f"{identity} list {prefix!r}: {response.text}")
    finally:
        for name, client in clients.items():
            if name != "admin":
                client.close()
    assert checks == len(ACTIONS) * len(IDENTITIES) * len(PATHS) + 15
    assert unexpected == [], "\n".join(unexpected)


def test_denials_are_audited(server: RunningServer, admin: httpx.Client) -> None:
    clients = setup_identities(server, admin)
    reset(admin)
    assert clients["reader"].get("/v1/secrets/other/x").status_code == 403
    assert (
        clients["reader"].post("/v1/resolve", json={"refs": ["secretsd://other/x#k"]}).status_code
        == 200
    )
    records = admin.get(
        "/v1/audit", params={"outcome": "denied", "identity": "reader", "path_prefix": "other"}
    ).json()["records"]
    assert {r["action"] for r in records} == {"read", "resolve"}
    for client in clients.values():
        if client is not admin:
            client.close()


def test_administration_is_authorised_by_sys_paths(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put(
        "/v1/policies/auditor",
        json={"rules": [{"path": "sys/audit", "capabilities": ["read"]}]},
    )
    admin.put(
        "/v1/policies/token-admin",
        json={"rules": [{"path": "sys/tokens", "capabilities": ["admin"]},
                        {"path": "apps/**", "capabilities": ["read"]}]},
    )  # fmt: skip
    auditor = admin.post("/v1/auth/tokens", json={"policies": ["auditor"]}).json()["token"]
    token_admin = admin.post("/v1/auth/tokens", json={"policies": ["token-admin"]}).json()["token"]
    with server.client(auditor) as client:
        assert client.get("/v1/audit").status_code == 200
        assert client.put("/v1/policies/x", json={"rules": []}).status_code == 403
        assert client.post("/v1/auth/tokens", json={"policies": []}).status_code == 403
        assert client.get("/v1/secrets/apps/x").status_code == 403
    with server.client(token_admin) as client:
        assert client.get("/v1/audit").status_code == 403
        own = client.post("/v1/auth/tokens", json={"policies": ["token-admin"]})
        assert own.status_code == 200
        escalate = client.post("/v1/auth/tokens", json={"policies": ["admin"]})
        assert escalate.status_code == 403
        assert "nobody may grant what they do not hold" in escalate.json()["error"]["message"]
    # The reserved folder cannot hold secrets.
    reserved = admin.put("/v1/secrets/sys/audit", json={"data": {"k": "v"}})
    assert reserved.status_code == 400 and "reserved" in reserved.json()["error"]["message"]
