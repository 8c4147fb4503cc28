"""Kubernetes login per cluster: each cluster its issuer and keys, each role its cluster.

Two local "API servers" (TLS, discovery document and JWKS; tests/test_kubernetes_sources.py)
with different issuers sign tokens for the same namespace and service account, even with
the same key id: a token of cluster A never logs in to a role bound to cluster B.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer
from tests.test_kubernetes_login import ISSUER, keypair, login, projected
from tests.test_kubernetes_sources import Cluster, denied_details

ALPHA = "https://alpha.k8s.example"
BETA = "https://beta.k8s.example"


@pytest.fixture
def clusters(tmp_path: Path, admin: httpx.Client) -> Iterator[tuple[Cluster, Cluster]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alpha, beta = Cluster(tmp_path / "a", ALPHA), Cluster(tmp_path / "b", BETA)
    alpha.add_key("rsa-1")
    beta.add_key("rsa-1")  # the same key id, another key
    beta.add_key("ec-1")
    answer = admin.put(
        "/v1/auth/kubernetes/clusters/alpha/config",
        json={
            "issuer": ALPHA,
            "oidc_discovery_url": f"{alpha.url}/.well-known/openid-configuration",
            "jwks_ca_cert": alpha.ca,
        },
    )
    assert answer.status_code == 200, answer.text
    answer = admin.put(
        "/v1/auth/kubernetes/clusters/beta/config",
        json={"issuer": BETA, "jwks_url": f"{beta.url}/openid/v1/jwks", "jwks_ca_cert": beta.ca},
    )
    assert answer.status_code == 200, answer.text
    admin.put("/v1/policies/shop", json={"rules": [{"path": "shop/**", "capabilities": ["read"]}]})
    for role, cluster in (("web-alpha", "alpha"), ("web-beta", "beta")):
        answer = admin.put(
            f"/v1/auth/kubernetes/roles/{role}",
            json={
                "bound_service_account_names": ["web"],
                "bound_service_account_namespaces": ["shop"],
                "policies": ["shop"],
                "cluster": cluster,
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["cluster"] == cluster
    yield alpha, beta
    alpha.close()
    beta.close()


def test_a_token_logs_in_only_to_roles_of_its_own_cluster(
    server: RunningServer, admin: httpx.Client, clusters: tuple[Cluster, Cluster]
) -> None:
    alpha, beta = clusters
    from_alpha = alpha.token("rsa-1")
    from_beta_rsa, from_beta_ec = beta.token("rsa-1"), beta.token("ec-1")
    assert login(server, "web-alpha", from_alpha).status_code == 200
    assert login(server, "web-beta", from_beta_rsa).status_code == 200
    ok = login(server, "web-beta", from_beta_ec)
    assert ok.status_code == 200, ok.text
    with server.client(ok.json()["token"]) as pod:
        assert pod.get("/v1/auth/tokens/self").json()["policies"] == ["shop"]
    crossed = [login(server, "web-beta", from_alpha), login(server, "web-alpha", from_beta_rsa)]
    assert [answer.status_code for answer in crossed] == [401, 401]
    # The refusal is uniform; the reason is in the audit log only.
    assert crossed[0].json() == crossed[1].json()
    assert "issuer" not in crossed[0].text
    # Even a token re-issued with the other cluster's issuer is refused: its key is not there.
    forged = alpha.token("rsa-1", iss=BETA)
    assert login(server, "web-beta", forged).status_code == 401
    reasons = denied_details(admin)
    assert len(reasons) == 3
    assert any("signature" in reason or "issuer" in reason for reason in reasons)


def test_the_default_cluster_keeps_the_original_api(
    server: RunningServer, admin: httpx.Client, clusters: tuple[Cluster, Cluster]
) -> None:
    assert admin.get("/v1/auth/kubernetes/config").status_code == 404
    key, public = keypair("ec")
    put = admin.put("/v1/auth/kubernetes/config", json={"issuer": ISSUER, "public_keys": [public]})
    assert put.status_code == 200, put.text
    alias = admin.get("/v1/auth/kubernetes/clusters/default/config").json()
    assert alias == admin.get("/v1/auth/kubernetes/config").json()
    assert alias["cluster"] == "default" and alias["public_keys"] == [public]
    assert admin.get("/v1/auth/kubernetes/clusters").json() == {
        "clusters": ["alpha", "beta", "default"]
    }
    beta = admin.get("/v1/auth/kubernetes/clusters/beta/config").json()
    assert (beta["cluster"], beta["issuer"]) == ("beta", BETA)
    # A role that names no cluster is bound to "default", as roles were before.
    role = admin.put(
        "/v1/auth/kubernetes/roles/legacy",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "policies": ["shop"],
        },
    ).json()
    assert role["cluster"] == "default"
    token = projected(key, "shop", "web")
    assert login(server, "legacy", token).status_code == 200
    assert login(server, "web-alpha", token).status_code == 401


def test_cluster_configs_are_admin_only_audited_and_grants_checked(
    server: RunningServer, admin: httpx.Client, clusters: tuple[Cluster, Cluster]
) -> None:
    alpha, beta = clusters
    admin.put(
        "/v1/policies/beta-admin",
        json={"rules": [{"path": "sys/kubernetes/clusters/beta", "capabilities": ["admin"]}]},
    )
    token = admin.post("/v1/auth/tokens", json={"policies": ["beta-admin"], "ttl": "10m"}).json()
    other_key = keypair("rsa")[1]
    with server.client(token["token"]) as limited:
        body = {"issuer": BETA, "public_keys": [other_key]}
        # Not its cluster at all.
        assert limited.put("/v1/auth/kubernetes/clusters/alpha/config", json=body).status_code == (
            403
        )
        assert limited.put("/v1/auth/kubernetes/config", json=body).status_code == 403
        # Its cluster, but its keys would let it log in to a role granting "shop".
        refused = limited.put("/v1/auth/kubernetes/clusters/beta/config", json=body)
        assert refused.status_code == 403
        assert "shop" in refused.json()["error"]["message"]
        gone = limited.delete("/v1/auth/kubernetes/clusters/beta/config")
        assert gone.status_code == 403
    assert login(server, "web-beta", beta.token("rsa-1")).status_code == 200  # unchanged
    records = admin.get("/v1/audit", params={"action": "kubernetes-config"}).json()["records"]
    assert {"allowed", "denied"} <= {r["outcome"] for r in records}
    # Bad input: specific, and nothing changes.
    bad = admin.put("/v1/auth/kubernetes/clusters/bad name/config", json={"issuer": ALPHA})
    assert bad.status_code in (400, 404, 422)
    bad_role = admin.put(
        "/v1/auth/kubernetes/roles/r",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "cluster": "no/slash",
        },
    )
    assert bad_role.status_code == 422
    assert admin.get("/v1/auth/kubernetes/roles/r").status_code == 404
    before = admin.get("/v1/auth/kubernetes/clusters/alpha/config").json()
    for ca in ("é", "not a certificate"):  # schemathesis found the first one: was a 500
        bad_ca = admin.put(
            "/v1/auth/kubernetes/clusters/alpha/config",
            json={"issuer": ALPHA, "jwks_url": f"{alpha.url}/openid/v1/jwks", "jwks_ca_cert": ca},
        )
        assert bad_ca.status_code == 422, bad_ca.text
        assert "jwks_ca_cert is not a PEM CA certificate" in bad_ca.json()["error"]["message"]
    assert admin.get("/v1/auth/kubernetes/clusters/alpha/config").json() == before
    # Removing a cluster's configuration ends its logins (the reason goes to the audit log).
    assert admin.delete("/v1/auth/kubernetes/clusters/beta/config").status_code == 204
    assert admin.get("/v1/auth/kubernetes/clusters").json() == {"clusters": ["alpha"]}
    assert login(server, "web-beta", beta.token("rsa-1")).status_code == 401
    assert any("not configured for cluster 'beta'" in r for r in denied_details(admin))
    assert login(server, "web-alpha", alpha.token("rsa-1")).status_code == 200


def test_roles_made_before_clusters_are_bound_to_default(database_url: str) -> None:
    """Migration 0008 on a database with a role (SQLite and PostgreSQL), and back."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from secretsd.auth.kubernetes import KubernetesAuth
    from secretsd.auth.tokens import TokenStore
    from secretsd.db.migrate import _alembic_config

    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "0007")
            connection.execute(
                text(
                    "INSERT INTO kubernetes_roles (name, service_accounts, namespaces, policies,"
                    " token_ttl, token_max_ttl, created_at) VALUES ('old', '[\"web\"]',"
                    " '[\"shop\"]', '[\"shop\"]', 900, 3600, 0)"
                )
            )
            command.upgrade(_alembic_config(connection), "head")
        auth = KubernetesAuth(engine, TokenStore(engine))
        assert auth.get_role("old").cluster == "default"
        assert [r.name for r in auth.roles_of_cluster("default")] == ["old"]
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0007")
            names = connection.execute(text("SELECT name FROM kubernetes_roles")).scalars().all()
        assert names == ["old"]
    finally:
        engine.dispose()
