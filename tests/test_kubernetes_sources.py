"""Kubernetes login with keys from the cluster: OIDC discovery, JWKS, TokenReview.

A real API server cannot run here. The discovery document, the JWKS and the
TokenReview API are served by a small local HTTPS server speaking exactly
those wire formats (``authentication.k8s.io/v1`` TokenReview JSON); the
tokens are real JWTs signed with RSA and EC keys made by the tests, shaped
like projected service-account tokens; secretsd reaches the endpoints through
PyJWT's PyJWKClient and the official ``kubernetes`` client.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import RunningServer, self_signed_certificate
from tests.test_kubernetes_login import ISSUER, keypair, login, projected


class Cluster:
    """The parts of an API server secretsd talks to, over TLS."""

    def __init__(self, tmp_path: Path, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        cert, key = self_signed_certificate(tmp_path)
        self.ca = cert.read_text()
        self.keys: dict[str, Any] = {}
        self.jwks_hits = 0
        self.reviews: list[dict[str, Any]] = []
        self.revoked: set[str] = set()
        self.reviewer_token = "reviewer-" + "r" * 20
        self.reviewer_file = tmp_path / "reviewer-token"
        self.reviewer_file.write_text(self.reviewer_token)
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._send(
                        200, {"issuer": cluster.issuer, "jwks_uri": f"{cluster.url}/openid/v1/jwks"}
                    )
                elif self.path == "/openid/v1/jwks":
                    cluster.jwks_hits += 1
                    self._send(200, {"keys": [cluster.jwk(kid) for kid in cluster.keys]})
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._send(404, {})
                    return
                if self.headers.get("Authorization") != f"Bearer {cluster.reviewer_token}":
                    self._send(401, {"kind": "Status", "code": 401})
                    return
                cluster.reviews.append(body)
                self._send(201, cluster.review(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid].public_key()
        algorithm: Any = RSAAlgorithm if kid.startswith("rsa") else ECAlgorithm
        jwk = algorithm.to_jwk(key, as_dict=True)
        jwk.update(kid=kid, use="sig", alg="RS256" if kid.startswith("rsa") else "ES256")
        return dict(jwk)

    def add_key(self, kid: str) -> Any:
        self.keys[kid] = keypair("rsa" if kid.startswith("rsa") else "ec")[0]
        return self.keys[kid]

    def token(self, kid: str, namespace: str = "shop", account: str = "web", **claims: Any) -> str:
        claims.setdefault("iss", self.issuer)
        unsigned = projected(self.keys[kid], namespace, account, **claims)
        # Re-sign with the kid in the header, as the API server does.
        payload = jwt.decode(unsigned, options={"verify_signature": False})
        algorithm = "RS256" if kid.startswith("rsa") else "ES256"
        return jwt.encode(payload, self.keys[kid], algorithm=algorithm, headers={"kid": kid})

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body["spec"]["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        status: dict[str, Any]
        if token in self.revoked:
            status = {"authenticated": False, "error": "service account shop/web has been deleted"}
        else:
            info = claims["kubernetes.io"]
            status = {
                "authenticated": True,
                "audiences": claims["aud"],
                "user": {
                    "username": f"system:serviceaccount:{info['namespace']}:"
                    f"{info['serviceaccount']['name']}",
                    "uid": info["serviceaccount"]["uid"],
                    "groups": ["system:serviceaccounts"],
                },
            }
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": body["spec"],
            "status": status,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster(tmp_path: Path, admin: httpx.Client) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    running.add_key("rsa-1")
    running.add_key("ec-1")
    admin.put("/v1/policies/shop", json={"rules": [{"path": "shop/**", "capabilities": ["read"]}]})
    role = admin.put(
        "/v1/auth/kubernetes/roles/shop-web",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "policies": ["shop"],
        },
    )
    assert role.status_code == 200, role.text
    yield running
    running.close()


def configure(admin: httpx.Client, **fields: Any) -> httpx.Response:
    return admin.put("/v1/auth/kubernetes/config", json={"issuer": ISSUER, **fields})


def denied_details(admin: httpx.Client) -> list[str]:
    records = admin.get("/v1/audit", params={"action": "login", "outcome": "denied"}).json()
    return [r["detail"] for r in records["records"]]


def test_keys_from_oidc_discovery_with_rotation(
    server: RunningServer, admin: httpx.Client, cluster: Cluster
) -> None:
    answer = configure(admin, oidc_discovery_url=f"{cluster.url}/.well-known/openid-configuration",
                       jwks_ca_cert=cluster.ca)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["audiences"] == ["secretsd"] and answer.json()["leeway"] == 0
    for kid in ("rsa-1", "ec-1"):
        assert login(server, "shop-web", cluster.token(kid)).status_code == 200
    assert cluster.jwks_hits == 1, "the key set is cached"
    # The cluster rotates its signing key: a new kid triggers one refresh.
    cluster.add_key("rsa-2")
    assert login(server, "shop-web", cluster.token("rsa-2")).status_code == 200
    assert cluster.jwks_hits == 2
    assert login(server, "shop-web", cluster.token("rsa-2")).status_code == 200
    assert cluster.jwks_hits == 2


def test_unknown_key_ids_cannot_hammer_the_cluster(
    server: RunningServer, admin: httpx.Client, cluster: Cluster
) -> None:
    configure(admin, jwks_url=f"{cluster.url}/openid/v1/jwks", jwks_ca_cert=cluster.ca)
    forger = keypair("rsa")[0]
    for index in range(15):
        token = projected(forger, "shop", "web")
        payload = jwt.decode(token, options={"verify_signature": False})
        forged = jwt.encode(payload, forger, algorithm="RS256", headers={"kid": f"forged-{index}"})
        answer = login(server, "shop-web", forged)
        assert answer.status_code == 401
        assert "forged" not in answer.text
    assert cluster.jwks_hits <= 7, cluster.jwks_hits
    details = denied_details(admin)
    assert any("not in the cluster's JWKS" in d for d in details)
    assert any("rate-limited" in d for d in details)


def test_expired_tokens_and_foreign_audiences_are_refused_by_default(
    server: RunningServer, admin: httpx.Client, cluster: Cluster
) -> None:
    configure(admin, jwks_url=f"{cluster.url}/openid/v1/jwks", jwks_ca_cert=cluster.ca)
    just_expired = cluster.token("rsa-1", exp=int(time.time()) - 5)
    api_audience = cluster.token("rsa-1", aud=["https://kubernetes.default.svc.cluster.local"])
    assert login(server, "shop-web", just_expired).status_code == 401
    assert login(server, "shop-web", api_audience).status_code == 401
    details = denied_details(admin)
    assert any("has expired" in d for d in details)
    assert any("audience is not accepted" in d for d in details)
    # Both are explicit settings.
    assert configure(admin, jwks_url=f"{cluster.url}/openid/v1/jwks", jwks_ca_cert=cluster.ca,
                     leeway=30, allow_any_audience=True).status_code == 200  # fmt: skip
    assert login(server, "shop-web", just_expired).status_code == 200
    assert login(server, "shop-web", api_audience).status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jwks_url": "http://127.0.0.1/jwks"}, "must be an https:// URL"),
        ({"jwks_url": "https://a/jwks", "public_keys": ["x"]}, "give one key source"),
        ({}, "public_keys is empty"),
        ({"jwks_url": "https://a/jwks", "jwks_ca_cert": "nope"}, "not a PEM CA certificate"),
        (
            {"jwks_url": "https://a/jwks", "audiences": ["a"], "allow_any_audience": True},
            "not both",
        ),
    ],
)
def test_bad_key_source_settings_are_refused(
    admin: httpx.Client, fields: dict[str, Any], message: str
) -> None:
    answer = configure(admin, **fields)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]["message"]


def test_token_review_refuses_a_deleted_service_account(
    server: RunningServer, admin: httpx.Client, cluster: Cluster
) -> None:
    review = {"host": cluster.url, "ca_cert": cluster.ca, "token_file": str(cluster.reviewer_file)}
    answer = configure(admin, jwks_url=f"{cluster.url}/openid/v1/jwks", jwks_ca_cert=cluster.ca,
                       token_review=review)  # fmt: skip
    assert answer.status_code == 200, answer.text
    good, gone = cluster.token("rsa-1"), cluster.token("ec-1")
    cluster.revoked.add(gone)
    assert login(server, "shop-web", good).status_code == 200
    refused = login(server, "shop-web", gone)
    assert refused.status_code == 401 and "deleted" not in refused.text
    assert any("has been deleted" in d for d in denied_details(admin))
    assert cluster.reviews[0]["spec"]["audiences"] == ["secretsd"]
    # TokenReview alone (no key source): the API server decides.
    assert configure(admin, token_review=review).status_code == 200
    assert login(server, "shop-web", good).status_code == 200
    assert login(server, "shop-web", gone).status_code == 401
    # secretsd's own credentials rejected by the API server: unavailable, not "refused".
    cluster.reviewer_token = "rotated"
    assert login(server, "shop-web", good).status_code == 503
