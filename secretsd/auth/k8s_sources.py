"""Where a cluster's service-account signing keys come from, and the TokenReview check.

- ``RemoteKeys``: the keys published by the cluster itself, from a JWKS URL
  or from the issuer's OIDC discovery document (``jwks_uri``), fetched with
  PyJWT's ``PyJWKClient``. The key set is cached (five minutes); a token
  signed with a key id the cache does not hold triggers a refresh, at most
  a few a minute (``limits``), so a flood of forged key ids cannot turn
  secretsd into a load generator against the API server.
- ``TokenReviewer``: asks the API server (``TokenReview``, through the
  official ``kubernetes`` client) whether the token is still valid, which
  also catches tokens of deleted service accounts or pods.

Both raise ``LoginRefused`` with a precise reason (the audit log keeps it;
the caller only hears "refused"), or ``Unavailable`` when the cluster
cannot be reached (the pod retries; it did nothing wrong).
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from secretsd.auth.approle import LoginRefused
from secretsd.errors import Unavailable

__all__ = ["RemoteKeys", "ReviewedAccount", "TokenReviewer", "ssl_context"]

JWKS_LIFESPAN = 300.0
REFRESH_LIMIT = parse("6/minute")
DEFAULT_REVIEWER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def ssl_context(ca_cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_cert:
        context.load_verify_locations(cadata=ca_cert)
    return context


class RemoteKeys:
    """One cluster's signing keys from its JWKS (directly or via OIDC discovery)."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None = None,
        discovery_url: str | None = None,
        ca_cert: str | None = None,
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._discovery_url = discovery_url
        self._ca_cert = ca_cert
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _discover(self) -> str:
        assert self._discovery_url is not None
        try:
            answer = httpx.get(self._discovery_url, verify=ssl_context(self._ca_cert), timeout=10.0)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Unavailable(
                f"cannot read the OIDC discovery document {self._discovery_url}: "
                f"{type(error).__name__}"
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise Unavailable(f"{self._discovery_url} has no jwks_uri")
        if document.get("issuer") != self._issuer:
            raise LoginRefused(
                f"the discovery document's issuer {str(document.get('issuer'))[:100]!r} is not "
                f"the configured issuer {self._issuer}"
            )
        return str(document["jwks_uri"])

    def _jwk_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(
                    url,
                    cache_jwk_set=True,
                    lifespan=JWKS_LIFESPAN,
                    cache_keys=False,
                    timeout=10,
                    ssl_context=ssl_context(self._ca_cert),
                )
            return self._client

    def _keys(self, refresh: bool) -> list[jwt.PyJWK]:
        client = self._jwk_client()
        try:
            return client.get_signing_keys(refresh=refresh)
        except jwt.PyJWKClientConnectionError as error:
            raise Unavailable(f"cannot fetch the cluster's JWKS: {error}") from None
        except jwt.PyJWKClientError as error:
            raise LoginRefused(f"the cluster's JWKS is unusable: {error}") from None

    def key_for(self, token: str) -> jwt.PyJWK:
        """The key that should verify ``token``, refreshing once (rate-limited) on a new kid."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise LoginRefused("the JWT is malformed") from None
        for refresh in (False, True):
            if refresh and not self._limiter.hit(REFRESH_LIMIT, "jwks"):
                raise LoginRefused(f"unknown key id {str(kid)[:64]!r} (JWKS refresh rate-limited)")
            keys = self._keys(refresh)
            if kid is None and len(keys) == 1:
                return keys[0]
            for key in keys:
                if key.key_id == kid:
                    return key
        raise LoginRefused(f"unknown key id {str(kid)[:64]!r}: not in the cluster's JWKS")


@dataclass(frozen=True, slots=True)
class ReviewedAccount:
    namespace: str
    name: str
    uid: str


class TokenReviewer:
    """``POST /apis/authentication.k8s.io/v1/tokenreviews`` through the kubernetes client."""

    def __init__(
        self, host: str, ca_cert: str | None = None, token_file: Path | None = None
    ) -> None:
        self.host = host
        self._token_file = token_file or DEFAULT_REVIEWER_TOKEN
        self._ca_file: str | None = None
        if ca_cert:
            # The kubernetes client takes a CA *file*; this one lives as long as the process.
            with tempfile.NamedTemporaryFile(
                "w", prefix="secretsd-k8s-ca-", suffix=".pem", delete=False
            ) as handle:
                handle.write(ca_cert)
                self._ca_file = handle.name

    def _api(self) -> Any:
        from kubernetes import client as k8s

        configuration = k8s.Configuration()
        configuration.host = self.host
        configuration.ssl_ca_cert = self._ca_file
        try:
            token = self._token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise Unavailable(
                f"cannot read the TokenReview credentials {self._token_file}: {error.strerror}"
            ) from None
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return k8s.AuthenticationV1Api(k8s.ApiClient(configuration))

    def review(self, token: str, audiences: tuple[str, ...]) -> ReviewedAccount:
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        body = k8s.V1TokenReview(
            spec=k8s.V1TokenReviewSpec(token=token, audiences=list(audiences) or None)
        )
        try:
            answer = api.create_token_review(body, _request_timeout=10)
        except ApiException as error:
            if error.status in (401, 403):
                raise Unavailable(
                    f"the API server refused secretsd's TokenReview ({error.status}): grant "
                    "its service account system:auth-delegator"
                ) from None
            raise Unavailable(f"TokenReview failed with status {error.status}") from None
        except Exception as error:  # urllib3 connection errors and the like
            raise Unavailable(
                f"cannot reach the API server {self.host} for TokenReview: {type(error).__name__}"
            ) from None
        finally:
            api.api_client.close()
        status = answer.status
        if status is None or not status.authenticated:
            reason = (status.error if status is not None else None) or "not authenticated"
            raise LoginRefused(f"TokenReview: {str(reason)[:200]}")
        if audiences and not set(status.audiences or ()) & set(audiences):
            raise LoginRefused("TokenReview: the token's audience is not accepted")
        user = status.user
        parts = (user.username or "").split(":") if user is not None else []
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise LoginRefused("TokenReview: the token is not a service-account token")
        return ReviewedAccount(parts[2], parts[3], str(user.uid or ""))
