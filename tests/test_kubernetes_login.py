"""Kubernetes service-account logins with real RSA/EC keys and real JWTs (PyJWT).

No API server runs here, and none is needed: secretsd verifies the JWT with
the cluster's service-account signing keys, so the tests sign tokens shaped
exactly like the ones a kubelet projects into pods.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import RunningServer

ISSUER = "https://kubernetes.default.svc.cluster.local"


def keypair(kind: str = "rsa") -> tuple[Any, str]:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def projected(key: Any, namespace: str, account: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ["secretsd"],
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": "0a1b2c"},
            "pod": {"name": "web-1", "uid": "3d4e5f"},
        },
    }
    claims.update(overrides)
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.fixture
def cluster(admin: httpx.Client) -> Any:
    key, public = keypair("rsa")
    ec_key, ec_public = keypair("ec")
    configured = admin.put(
        "/v1/auth/kubernetes/config",
        json={"issuer": ISSUER, "public_keys": [public, ec_public], "audiences": ["secretsd"]},
    )
    assert configured.status_code == 200, configured.text
    admin.put("/v1/policies/shop", json={"rules": [{"path": "shop/**", "capabilities": ["read"]}]})
    role = admin.put(
        "/v1/auth/kubernetes/roles/shop-web",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "policies": ["shop"],
            "token_ttl": "15m",
        },
    )
    assert role.status_code == 200, role.text
    return key, ec_key


def login(server: RunningServer, role: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=server.url) as anonymous:
        return anonymous.post("/v1/auth/kubernetes/login", json={"role": role, "jwt": token})


def test_pod_logs_in_with_its_service_account(
    server: RunningServer, admin: httpx.Client, cluster: Any
) -> None:
    rsa_key, ec_key = cluster
    admin.put("/v1/secrets/shop/db", json={"data": {"password": "k8s-pod-secret"}})
    for key in (rsa_key, ec_key):
        answer = login(server, "shop-web", projected(key, "shop", "web"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["policies"] == ["shop"] and body["method"] == "kubernetes"
        assert body["display_name"] == "k8s-shop-web" and 890 < body["ttl"] <= 900
        with server.client(body["token"]) as pod:
            assert pod.get("/v1/secrets/shop/db").json()["data"] == {"password": "k8s-pod-secret"}
            assert pod.get("/v1/secrets/other").status_code == 403
    legacy = jwt.encode(
        {
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "shop",
            "kubernetes.io/serviceaccount/service-account.name": "web",
            "sub": "system:serviceaccount:shop:web",
        },
        rsa_key,
        algorithm="RS256",
    )
    admin.put(
        "/v1/auth/kubernetes/config",
        json={
            "issuer": "kubernetes/serviceaccount",
            "public_keys": [keypair()[1], admin_key(rsa_key)],
        },
    )
    assert login(server, "shop-web", legacy).status_code == 200


def admin_key(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_refusals_are_uniform_and_audited(
    server: RunningServer, admin: httpx.Client, cluster: Any
) -> None:
    rsa_key, _ = cluster
    stranger, _ = keypair()
    cases = {
        "namespace 'other' is not bound": projected(rsa_key, "other", "web"),
        "service account 'db' is not bound": projected(rsa_key, "shop", "db"),
        "has expired": projected(rsa_key, "shop", "web", exp=int(time.time()) - 3600),
        "issuer is not": projected(rsa_key, "shop", "web", iss="https://evil.example"),
        "audience is not accepted": projected(rsa_key, "shop", "web", aud=["vault"]),
        "no public key verifies": projected(stranger, "shop", "web"),
        "malformed": "not.a.jwt",
    }
    for _reason, token in cases.items():
        answer = login(server, "shop-web", token)
        assert answer.status_code == 401
        assert "Kubernetes login refused" in answer.json()["error"]["message"]
    assert login(server, "nope", projected(rsa_key, "shop", "web")).status_code == 401
    details = {
        r["detail"]
        for r in admin.get("/v1/audit", params={"action": "login", "outcome": "denied"}).json()[
            "records"
        ]
    }
    for reason in cases:
        assert any(reason in detail for detail in details), reason
    assert any("unknown role 'nope'" in d for d in details)


def test_configuration_is_validated(admin: httpx.Client) -> None:
    bad_key = admin.put(
        "/v1/auth/kubernetes/config", json={"issuer": ISSUER, "public_keys": ["not a key"]}
    )
    assert bad_key.status_code == 422
    assert "public key 1 is not a PEM public key" in bad_key.json()["error"]["message"]
    no_binding = admin.put(
        "/v1/auth/kubernetes/roles/r",
        json={"bound_service_account_names": [], "bound_service_account_namespaces": ["x"]},
    )
    assert no_binding.status_code == 422
    assert admin.get("/v1/auth/kubernetes/config").status_code == 404
