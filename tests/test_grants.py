"""Nobody grants, by any route, what they do not hold: delegated admins attacking.

Each test is written as the attacker on loopback: a token whose policies
delegate part of the administration tries to reach more than it holds.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretsd.grants import may_overlap, not_held, subsumes
from secretsd.policy import Policy, Rule
from tests.conftest import RunningServer


def message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def token_with(admin: httpx.Client, *policies: str, ttl: str = "1h") -> dict[str, Any]:
    created = admin.post("/v1/auth/tokens", json={"policies": list(policies), "ttl": ttl})
    assert created.status_code == 200, created.text
    body: dict[str, Any] = created.json()
    return body


def policy(admin: httpx.Client, name: str, *rules: tuple[str, list[str]]) -> None:
    document = [{"path": path, "capabilities": caps} for path, caps in rules]
    assert admin.put(f"/v1/policies/{name}", json={"rules": document}).status_code == 200


# -- the decision itself ------------------------------------------------------


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("**", "apps/web/db", True),
        ("**", "sys/**", True),
        ("apps/**", "apps", True),
        ("apps/**", "apps/*/db", True),
        ("apps/*", "apps/web", True),
        ("apps/*", "apps/**", False),
        ("apps/web-*", "apps/web-1", True),
        ("apps/web-*", "apps/web-*-x", True),
        ("apps/web-*", "apps/*", False),
        ("apps/*-prod", "apps/web-*", False),
        ("apps/web/**", "apps/**", False),
        ("sys/approle/ci-*", "sys/approle/ci-x", True),
        ("sys/approle/ci-*", "**", False),
        ("apps/a", "apps/a/b", False),
    ],
)
def test_subsumes(wide: str, narrow: str, expected: bool) -> None:
    assert subsumes(wide, narrow) is expected


_SEGMENTS = st.sampled_from(["a", "b", "ab", "ba", "*", "a*", "*b", "a*b", "*a*"])
_PATTERNS = st.builds(
    lambda head, deep: "/".join(head + (["**"] if deep else [])) or "**",
    st.lists(_SEGMENTS, max_size=3),
    st.booleans(),
)
_PATHS = st.lists(st.sampled_from(["a", "b", "ab", "ba", "aab", "abb", "x"]), min_size=1,
                  max_size=4).map("/".join)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_PATTERNS, _PATTERNS, st.lists(_PATHS, min_size=1, max_size=20))
def test_subsumes_and_overlap_agree_with_the_matcher(
    wide: str, narrow: str, paths: list[str]
) -> None:
    """The grant check is sound against the policy engine's own matching."""
    wide_rule, narrow_rule = Rule(wide, frozenset({"read"})), Rule(narrow, frozenset({"read"}))
    for path in paths:
        if subsumes(wide, narrow) and narrow_rule.matches(path):
            assert wide_rule.matches(path), (wide, narrow, path)
        if wide_rule.matches(path) and narrow_rule.matches(path):
            assert may_overlap(wide, narrow), (wide, narrow, path)


def test_may_overlap_is_never_wrongly_disjoint() -> None:
    assert may_overlap("apps/prod/**", "apps/**")
    assert may_overlap("apps/*/db", "apps/web/*")
    assert not may_overlap("apps/prod/**", "apps/web/**")
    assert not may_overlap("apps/a", "apps/a/b")
    assert may_overlap("apps/**", "apps")


def test_not_held_names_what_is_beyond() -> None:
    mine = Policy.from_document(
        "mine",
        [
            {"path": "apps/**", "capabilities": ["read", "list"]},
            {"path": "apps/prod/**", "capabilities": ["deny"]},
        ],
    )
    narrow = Policy.from_document("n", [{"path": "apps/web/*", "capabilities": ["read"]}])
    assert not_held(list(mine.rules), [narrow]) == []
    wider = Policy.from_document("w", [{"path": "apps/**", "capabilities": ["write"]}])
    assert not_held(list(mine.rules), [wider]) == ["policy 'w' rule 'apps/**' ['write']"]
    # The same rules without the caller's deny would reach apps/prod: refused ...
    undenied = Policy.from_document("u", [{"path": "apps/**", "capabilities": ["read"]}])
    assert not_held(list(mine.rules), [undenied])
    # ... but carrying the deny along is fine.
    assert not_held(list(mine.rules), [mine]) == []


# -- AppRole ------------------------------------------------------------------


def test_delegated_approle_admin_cannot_mint_admin(
    server: RunningServer, admin: httpx.Client
) -> None:
    """The reported attack: sys/approle/ci-* admin writes role ci-x with ["admin"]."""
    policy(admin, "ci-admin", ("sys/approle/ci-*", ["admin"]))
    attacker = token_with(admin, "ci-admin")["token"]
    with server.client(attacker) as client:
        role = client.put("/v1/auth/approle/roles/ci-x", json={"policies": ["admin"]})
        assert role.status_code == 403, role.text
        assert "nobody may grant what they do not hold" in message(role)
        assert "'admin'" in message(role)
        # Nothing was written, so there is nothing to issue a secret-id for or log in with.
        issued = client.post("/v1/auth/approle/roles/ci-x/secret-ids", json={})
        assert issued.status_code == 404
    assert admin.get("/v1/auth/approle/roles/ci-x").status_code == 404
    denials = admin.get(
        "/v1/audit", params={"action": "approle-write", "outcome": "denied"}
    ).json()["records"]
    assert [r["path"] for r in denials] == ["sys/approle/ci-x"]


def test_delegated_approle_admin_cannot_use_or_change_a_stronger_role(
    server: RunningServer, admin: httpx.Client
) -> None:
    """A role an admin made with more than the delegate holds: no secret-id, no change."""
    policy(admin, "ci-admin", ("sys/approle/ci-*", ["admin"]))
    assert (
        admin.put("/v1/auth/approle/roles/ci-prod", json={"policies": ["admin"]}).status_code == 200
    )
    attacker = token_with(admin, "ci-admin")["token"]
    with server.client(attacker) as client:
        assert client.post("/v1/auth/approle/roles/ci-prod/secret-ids", json={}).status_code == 403
        widened = client.put(
            "/v1/auth/approle/roles/ci-prod", json={"policies": [], "bound_cidrs": ["0.0.0.0/0"]}
        )
        assert widened.status_code == 403
        assert client.delete("/v1/auth/approle/roles/ci-prod").status_code == 403
    assert admin.get("/v1/auth/approle/roles/ci-prod").json()["policies"] == ["admin"]


def test_delegated_approle_admin_grants_what_it_holds(
    server: RunningServer, admin: httpx.Client
) -> None:
    policy(admin, "ci-admin", ("sys/approle/ci-*", ["admin"]), ("apps/ci/**", ["read", "list"]))
    policy(admin, "ci-read", ("apps/ci/*", ["read"]))
    admin.put("/v1/secrets/apps/ci/key", json={"data": {"k": "v"}})
    delegate = token_with(admin, "ci-admin")["token"]
    with server.client(delegate) as client:
        role = client.put("/v1/auth/approle/roles/ci-x", json={"policies": ["ci-read"]})
        assert role.status_code == 200, role.text
        secret_id = client.post("/v1/auth/approle/roles/ci-x/secret-ids", json={}).json()
    login = httpx.post(
        f"{server.url}/v1/auth/approle/login",
        json={"role_id": role.json()["role_id"], "secret_id": secret_id["secret_id"]},
    )
    assert login.status_code == 200 and login.json()["policies"] == ["ci-read"]
    with server.client(login.json()["token"]) as host:
        assert host.get("/v1/secrets/apps/ci/key").status_code == 200
        assert host.get("/v1/auth/approle/roles/ci-x").status_code == 403


# -- Kubernetes ---------------------------------------------------------------


def test_delegated_kubernetes_admin_cannot_escalate(
    server: RunningServer, admin: httpx.Client
) -> None:
    policy(admin, "team-admin", ("sys/kubernetes/team-*", ["admin"]), ("apps/team/**", ["read"]))
    policy(admin, "team-read", ("apps/team/**", ["read"]))
    role = {"bound_service_account_names": ["app"], "bound_service_account_namespaces": ["team"]}
    delegate = token_with(admin, "team-admin")["token"]
    with server.client(delegate) as client:
        escalate = client.put(
            "/v1/auth/kubernetes/roles/team-x", json={**role, "policies": ["admin"]}
        )
        assert escalate.status_code == 403 and "do not hold" in message(escalate)
        fine = client.put(
            "/v1/auth/kubernetes/roles/team-x", json={**role, "policies": ["team-read"]}
        )
        assert fine.status_code == 200, fine.text
    # A role an admin made stronger cannot be changed or deleted by the delegate.
    admin.put("/v1/auth/kubernetes/roles/team-ops", json={**role, "policies": ["admin"]})
    with server.client(delegate) as client:
        assert (
            client.put(
                "/v1/auth/kubernetes/roles/team-ops", json={**role, "policies": ["team-read"]}
            ).status_code
            == 403
        )
        assert client.delete("/v1/auth/kubernetes/roles/team-ops").status_code == 403
    # Whoever sets the signing keys can log in to every role: must hold what they grant.
    policy(admin, "k8s-config", ("sys/kubernetes", ["admin"]), ("apps/team/**", ["read"]))
    keys_admin = token_with(admin, "k8s-config")["token"]
    config = {"issuer": "https://attacker.example", "public_keys": ["x"]}
    with server.client(keys_admin) as client:
        swapped = client.put("/v1/auth/kubernetes/config", json=config)
        assert swapped.status_code == 403 and "Kubernetes login keys" in message(swapped)


# -- policies -----------------------------------------------------------------


def test_policy_writer_cannot_widen_any_holder(server: RunningServer, admin: httpx.Client) -> None:
    policy(
        admin,
        "team-policies",
        ("sys/policies/team-*", ["admin"]),
        ("sys/policies/team-policies", ["admin"]),
        ("apps/team/**", ["read", "write"]),
    )
    writer = token_with(admin, "team-policies")["token"]
    with server.client(writer) as client:
        wide = client.put(
            "/v1/policies/team-x", json={"rules": [{"path": "apps/**", "capabilities": ["read"]}]}
        )
        assert wide.status_code == 403 and "'apps/**'" in message(wide)
        narrow = client.put(
            "/v1/policies/team-x",
            json={"rules": [{"path": "apps/team/db", "capabilities": ["read"]}]},
        )
        assert narrow.status_code == 200, narrow.text
        # Widening its own policy to everything: the write that made a delegate admin.
        own = client.put(
            "/v1/policies/team-policies",
            json={"rules": [{"path": "**", "capabilities": ["admin"]}]},
        )
        assert own.status_code == 403
        assert client.get("/v1/secrets/other/x").status_code == 403
    stored = admin.get("/v1/policies/team-policies").json()["rules"]
    assert "**" not in {rule["path"] for rule in stored}


def test_policy_writer_cannot_lift_a_deny(server: RunningServer, admin: httpx.Client) -> None:
    policy(admin, "no-prod", ("apps/prod/**", ["deny"]))
    policy(admin, "deny-admin", ("sys/policies/no-prod", ["admin"]), ("apps/web/**", ["read"]))
    writer = token_with(admin, "deny-admin")["token"]
    with server.client(writer) as client:
        assert client.delete("/v1/policies/no-prod").status_code == 403
        replaced = client.put(
            "/v1/policies/no-prod",
            json={"rules": [{"path": "apps/web/x", "capabilities": ["deny"]}]},
        )
        assert replaced.status_code == 403
        kept = client.put(
            "/v1/policies/no-prod",
            json={
                "rules": [
                    {"path": "apps/prod/**", "capabilities": ["deny"]},
                    {"path": "apps/web/x", "capabilities": ["deny"]},
                ]
            },
        )
        assert kept.status_code == 200, kept.text


# -- tokens -------------------------------------------------------------------


def test_token_admin_cannot_drop_its_own_denies(server: RunningServer, admin: httpx.Client) -> None:
    """Issuing a subset of one's own policy names can still grant more (a deny left out)."""
    policy(admin, "broad", ("sys/tokens", ["admin"]), ("apps/**", ["read"]))
    policy(admin, "no-prod", ("apps/prod/**", ["deny"]))
    admin.put("/v1/secrets/apps/prod/db", json={"data": {"k": "v"}})
    delegate = token_with(admin, "broad", "no-prod")["token"]
    with server.client(delegate) as client:
        assert client.get("/v1/secrets/apps/prod/db").status_code == 403
        dropped = client.post("/v1/auth/tokens", json={"policies": ["broad"]})
        assert dropped.status_code == 403 and "apps/**" in message(dropped)
        kept = client.post("/v1/auth/tokens", json={"policies": ["broad", "no-prod"]})
        assert kept.status_code == 200


def test_token_admin_cannot_lock_out_the_bootstrap_admin(
    server: RunningServer, admin: httpx.Client
) -> None:
    policy(admin, "token-admin", ("sys/tokens", ["admin"]), ("sys/tokens/**", ["admin"]))
    delegate = token_with(admin, "token-admin")
    bootstrap = admin.get("/v1/auth/tokens/self").json()["accessor"]
    with server.client(delegate["token"]) as client:
        revoke = client.post(f"/v1/auth/tokens/accessors/{bootstrap}/revoke")
        assert revoke.status_code == 403 and "revoking token" in message(revoke)
        assert (
            client.post(f"/v1/auth/tokens/accessors/{bootstrap}/renew", json={}).status_code == 403
        )
        by_value = client.post("/v1/auth/tokens/revoke", json={"token": server.token})
        assert by_value.status_code == 403
        # Its peers (nothing more than it holds) it may revoke.
        peer = token_with(admin, "token-admin")
        assert (
            client.post(f"/v1/auth/tokens/accessors/{peer['accessor']}/revoke").status_code == 204
        )
    assert admin.get("/v1/auth/tokens/self").status_code == 200


def test_children_never_outlive_their_creator(server: RunningServer, admin: httpx.Client) -> None:
    policy(admin, "token-admin", ("sys/tokens", ["admin"]))
    parent = token_with(admin, "token-admin", ttl="10m")
    with server.client(parent["token"]) as client:
        forever = client.post("/v1/auth/tokens", json={"policies": ["token-admin"], "ttl": 0})
        assert forever.status_code == 200, forever.text
        child = forever.json()
        assert child["expires_at"] is not None and child["expires_at"] <= parent["expires_at"]
        assert child["max_expires_at"] <= parent["expires_at"]
        assert "never outlives" in child["warnings"][0]
        long = client.post("/v1/auth/tokens", json={"policies": [], "ttl": "48h"}).json()
        assert long["ttl"] <= 600
    # Revoking the creator revokes what it created (and what that created).
    with server.client(child["token"]) as client:
        grandchild = client.post("/v1/auth/tokens", json={"policies": []}).json()
    assert admin.post(f"/v1/auth/tokens/accessors/{parent['accessor']}/revoke").status_code == 204
    for accessor in (child["accessor"], grandchild["accessor"], long["accessor"]):
        assert admin.get(f"/v1/auth/tokens/accessors/{accessor}").json()["revoked"] is True
    with server.client(grandchild["token"]) as client:
        assert client.get("/v1/auth/tokens/self").status_code == 401


def test_only_admins_issue_orphans(server: RunningServer, admin: httpx.Client) -> None:
    policy(admin, "token-admin", ("sys/tokens", ["admin"]))
    delegate = token_with(admin, "token-admin", ttl="5m")
    with server.client(delegate["token"]) as client:
        orphan = client.post("/v1/auth/tokens", json={"policies": [], "ttl": 0, "orphan": True})
        assert orphan.status_code == 403 and "orphan" in message(orphan)
    made = admin.post("/v1/auth/tokens", json={"policies": [], "orphan": True}).json()
    bootstrap = admin.get("/v1/auth/tokens/self").json()["accessor"]
    admin.post(f"/v1/auth/tokens/accessors/{bootstrap}/revoke")
    with server.client(made["token"]) as client:
        assert client.get("/v1/auth/tokens/self").status_code == 200


def test_a_token_admin_cannot_renew_beyond_its_own_life(
    server: RunningServer, admin: httpx.Client
) -> None:
    policy(admin, "token-admin", ("sys/tokens/**", ["admin"]))
    renewer = token_with(admin, "token-admin", ttl="5m")
    target = admin.post(
        "/v1/auth/tokens", json={"policies": ["token-admin"], "ttl": "1m", "max_ttl": "48h"}
    ).json()
    with server.client(renewer["token"]) as client:
        renewed = client.post(
            f"/v1/auth/tokens/accessors/{target['accessor']}/renew", json={"increment": "24h"}
        )
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["expires_at"] <= renewer["expires_at"]


# -- unknown policies (issue 9, item 7) -----------------------------------------


def test_granting_a_policy_that_does_not_exist_is_refused(
    server: RunningServer, admin: httpx.Client
) -> None:
    token = admin.post("/v1/auth/tokens", json={"policies": ["typo"]})
    assert token.status_code == 422
    assert "policy 'typo' does not exist; create it first" in message(token)
    role = admin.put("/v1/auth/approle/roles/r", json={"policies": ["typo"]})
    assert role.status_code == 422 and "'typo' does not exist" in message(role)
    k8s = admin.put(
        "/v1/auth/kubernetes/roles/r",
        json={
            "bound_service_account_names": ["a"],
            "bound_service_account_namespaces": ["b"],
            "policies": ["typo"],
        },
    )
    assert k8s.status_code == 422 and "'typo' does not exist" in message(k8s)
    assert admin.get("/v1/auth/approle/roles/r").status_code == 404


# -- the value-hash index -----------------------------------------------------


def test_a_token_that_reads_nothing_cannot_start_the_hash_index(
    server: RunningServer, admin: httpx.Client
) -> None:
    from secretsd.server.routes.value_hashes import index_for

    admin.put("/v1/secrets/apps/db", json={"data": {"k": "some-stored-value"}})
    nobody = token_with(admin)["token"]
    with server.client(nobody) as client:
        answer = client.post("/v1/values/hash-lookup", json={"prefixes": ["abcde"]})
        assert answer.status_code == 200 and answer.json()["hashes"] == []
    index = index_for(server.state)
    assert index._indexed == set() and index._children == {}  # listed and read nothing
    assert admin.post("/v1/values/hash-lookup", json={"prefixes": ["abcde"]}).status_code == 200
    assert index._indexed == {"apps/db"}


def test_the_hash_index_grows_only_as_far_as_the_caller_reads(
    server: RunningServer, admin: httpx.Client
) -> None:
    import hashlib

    from secretsd.server.routes.value_hashes import index_for

    admin.put("/v1/secrets/apps/web/db", json={"data": {"pw": "web-value-1"}})
    admin.put("/v1/secrets/apps/api/db", json={"data": {"pw": "api-value-1"}})
    admin.put("/v1/secrets/other/x", json={"data": {"pw": "other-value"}})
    policy(admin, "web", ("apps/web/*", ["read"]))
    reader = token_with(admin, "web")["token"]
    web = hashlib.sha256(b"web-value-1").hexdigest()
    api = hashlib.sha256(b"api-value-1").hexdigest()
    with server.client(reader) as client:
        found = client.post("/v1/values/hash-lookup", json={"prefixes": [web[:5], api[:5]]})
        assert found.json()["hashes"] == [web]
    assert index_for(server.state)._indexed == {"apps/web/db"}
    everything = admin.post("/v1/values/hash-lookup", json={"prefixes": [web[:5], api[:5]]})
    assert everything.json()["hashes"] == sorted([web, api])
    assert index_for(server.state)._indexed == {"apps/web/db", "apps/api/db", "other/x"}
    # A new secret in a folder listed before is found after the write.
    admin.put("/v1/secrets/apps/web/new", json={"data": {"pw": "web-value-2"}})
    new = hashlib.sha256(b"web-value-2").hexdigest()
    with server.client(reader) as client:
        again = client.post("/v1/values/hash-lookup", json={"prefixes": [new[:5]]})
        assert again.json()["hashes"] == [new]
