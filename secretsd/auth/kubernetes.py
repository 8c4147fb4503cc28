"""Kubernetes service-account logins: a pod trades its service-account JWT for a token.

secretsd checks the JWT itself, against the cluster's service-account issuer
and its signing keys, which come from one of:

- ``public_keys``: PEM keys given by the admin (``--service-account-key-file``);
- ``jwks_url``: the cluster's JWKS (``https://<api>/openid/v1/jwks``);
- ``oidc_discovery_url``: the issuer's discovery document, whose ``jwks_uri``
  names the JWKS (``<issuer>/.well-known/openid-configuration``).

Remote keys are cached and refreshed on an unknown key id, rate-limited
(``secretsd.auth.k8s_sources``). With ``token_review`` set, the API server's
TokenReview is asked as well (or alone, when no key source is given), which
also refuses tokens of deleted service accounts and pods; secretsd's own
service account then needs ``system:auth-delegator``.

Audience and clock leeway are explicit: ``audiences`` defaults to
``["secretsd"]`` (the injector mounts a projected token for that audience, so
the pod's default API token, which could be replayed against the API server,
is not what secretsd accepts); accepting any audience takes
``allow_any_audience: true``. ``leeway`` (seconds of clock skew tolerated on
``exp``/``nbf``) defaults to 0.

Several clusters can log in, each with its own configuration (issuer, key
source, TokenReview, audiences): a configuration is named after its cluster,
and a role is bound to one cluster, so a token is verified only against the
issuer and keys of its role's cluster; a token from cluster A never logs in
to a role of cluster B, even with the same namespace and service account.
The cluster ``default`` is the one ``/v1/auth/kubernetes/config`` has always
set, and roles that name no cluster are bound to it.

A role binds service-account names and namespaces (``*`` = any) to policies.
Both token layouts are understood: projected tokens (``kubernetes.io`` claim,
``exp`` required) and legacy secret-based tokens (``kubernetes.io/serviceaccount/*``
claims, issuer ``kubernetes/serviceaccount``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import Engine, delete, insert, select, update

from secretsd.auth.approle import LoginRefused
from secretsd.auth.k8s_sources import RemoteKeys, TokenReviewer
from secretsd.auth.tokens import IssuedToken, TokenStore
from secretsd.db.engine import database_errors
from secretsd.db.models import InstanceState, KubernetesRole
from secretsd.errors import NotFound, ValidationFailed
from secretsd.policy import validate_policy_name

__all__ = [
    "DEFAULT_CLUSTER",
    "KubernetesAuth",
    "KubernetesConfig",
    "KubernetesRoleInfo",
    "ServiceAccount",
    "TokenReviewConfig",
]

_CONFIG_KEY = "kubernetes_auth_config"  # the "default" cluster (before clusters had names)
_CLUSTER_KEY = "kubernetes_auth_config/"  # + the cluster's name
DEFAULT_CLUSTER = "default"
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LEGACY_ISSUER = "kubernetes/serviceaccount"
_RSA = ["RS256", "RS384", "RS512"]
_EC = ["ES256", "ES384", "ES512"]
DEFAULT_AUDIENCES = ("secretsd",)
MAX_LEEWAY = 300


@dataclass(frozen=True, slots=True)
class TokenReviewConfig:
    host: str
    ca_cert: str | None = None
    token_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "ca_cert": self.ca_cert, "token_file": self.token_file}


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    issuer: str
    public_keys: tuple[str, ...]
    audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    jwks_url: str | None = None
    oidc_discovery_url: str | None = None
    jwks_ca_cert: str | None = None
    token_review: TokenReviewConfig | None = None
    allow_any_audience: bool = False
    leeway: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "public_keys": list(self.public_keys),
            "audiences": list(self.audiences),
            "jwks_url": self.jwks_url,
            "oidc_discovery_url": self.oidc_discovery_url,
            "jwks_ca_cert": self.jwks_ca_cert,
            "token_review": self.token_review.to_json() if self.token_review else None,
            "allow_any_audience": self.allow_any_audience,
            "leeway": self.leeway,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KubernetesConfig:
        review = data.get("token_review")
        audiences = tuple(data.get("audiences") or ())
        any_audience = bool(data.get("allow_any_audience", False))
        return cls(
            issuer=data["issuer"],
            public_keys=tuple(data.get("public_keys") or ()),
            audiences=audiences or (() if any_audience else DEFAULT_AUDIENCES),
            jwks_url=data.get("jwks_url"),
            oidc_discovery_url=data.get("oidc_discovery_url"),
            jwks_ca_cert=data.get("jwks_ca_cert"),
            token_review=TokenReviewConfig(**review) if review else None,
            allow_any_audience=any_audience,
            leeway=int(data.get("leeway", 0)),
        )


def _check_url(url: str | None, name: str) -> str | None:
    if url is None:
        return None
    if not url.startswith("https://") or len(url) > 2000:
        raise ValidationFailed(
            f"{name} must be an https:// URL (the keys decide who may log in; plain HTTP "
            "would let anyone on the path forge them)"
        )
    return url


@dataclass(frozen=True, slots=True)
class KubernetesRoleInfo:
    name: str
    service_accounts: tuple[str, ...]
    namespaces: tuple[str, ...]
    policies: tuple[str, ...]
    token_ttl: int
    token_max_ttl: int
    cluster: str = DEFAULT_CLUSTER

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cluster": self.cluster,
            "bound_service_account_names": list(self.service_accounts),
            "bound_service_account_namespaces": list(self.namespaces),
            "policies": list(self.policies),
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
        }


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    namespace: str
    name: str
    uid: str


def validate_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME.match(name):
        raise ValidationFailed(
            f"cluster names are 1-64 letters, digits, '.', '_' or '-'; got {name[:80]!r}"
        )
    return name


def _config_key(cluster: str) -> str:
    validate_cluster_name(cluster)
    return _CONFIG_KEY if cluster == DEFAULT_CLUSTER else _CLUSTER_KEY + cluster


def _check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    for index, key in enumerate(keys, start=1):
        try:
            load_pem_public_key(key.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ValidationFailed(
                f"public key {index} is not a PEM public key ('-----BEGIN PUBLIC KEY-----'); "
                "export it with `openssl rsa -pubout` or from /openid/v1/jwks"
            ) from None
    return tuple(keys)


def _check_ca(pem: str, name: str) -> None:
    import ssl

    problem = f"{name} is not a PEM CA certificate ('-----BEGIN CERTIFICATE-----', ASCII)"
    if not pem.isascii():  # ssl refuses anything else with a TypeError
        raise ValidationFailed(problem)
    try:
        ssl.create_default_context().load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError, TypeError):
        raise ValidationFailed(problem) from None


def _matches(value: str, bound: Sequence[str]) -> bool:
    return "*" in bound or value in bound


def service_account_of(claims: dict[str, Any]) -> ServiceAccount:
    """Namespace and name from either token layout; LoginRefused when absent."""
    projected = claims.get("kubernetes.io")
    if isinstance(projected, dict):
        account = projected.get("serviceaccount") or {}
        namespace, name = projected.get("namespace"), account.get("name")
        uid = str(account.get("uid", ""))
    else:
        namespace = claims.get("kubernetes.io/serviceaccount/namespace")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name")
        uid = str(claims.get("kubernetes.io/serviceaccount/service-account.uid", ""))
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise LoginRefused("the JWT is not a Kubernetes service-account token")
    return ServiceAccount(namespace, name, uid)


def _role_info(row: Any) -> KubernetesRoleInfo:
    return KubernetesRoleInfo(
        name=row.name,
        service_accounts=tuple(json.loads(row.service_accounts)),
        namespaces=tuple(json.loads(row.namespaces)),
        policies=tuple(json.loads(row.policies)),
        token_ttl=row.token_ttl,
        token_max_ttl=row.token_max_ttl,
        cluster=row.cluster or DEFAULT_CLUSTER,
    )


class KubernetesAuth:
    def __init__(self, engine: Engine, tokens: TokenStore) -> None:
        self._engine = engine
        self._tokens = tokens
        # Remote key sets and reviewers, per configuration (one cache per cluster setup).
        self._remote: dict[tuple[str, str, str, str], RemoteKeys] = {}
        self._reviewers: dict[tuple[str, str, str], TokenReviewer] = {}

    # -- configuration ------------------------------------------------------

    def configure(
        self,
        issuer: str,
        public_keys: Sequence[str] = (),
        audiences: Sequence[str] = (),
        *,
        jwks_url: str | None = None,
        oidc_discovery_url: str | None = None,
        jwks_ca_cert: str | None = None,
        token_review: TokenReviewConfig | None = None,
        allow_any_audience: bool = False,
        leeway: int = 0,
        cluster: str = DEFAULT_CLUSTER,
    ) -> KubernetesConfig:
        key = _config_key(cluster)
        if not issuer:
            raise ValidationFailed(
                "issuer is empty; give the service-account issuer, e.g. "
                "https://kubernetes.default.svc.cluster.local (or kubernetes/serviceaccount)"
            )
        sources = [bool(public_keys), bool(jwks_url), bool(oidc_discovery_url)]
        if sum(sources) > 1:
            raise ValidationFailed(
                "give one key source: public_keys, jwks_url or oidc_discovery_url"
            )
        if not any(sources) and token_review is None:
            raise ValidationFailed(
                "public_keys is empty; give the cluster's service-account keys (PEM), a "
                "jwks_url, an oidc_discovery_url, or token_review"
            )
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValidationFailed(f"leeway must be 0..{MAX_LEEWAY} seconds")
        if allow_any_audience and audiences:
            raise ValidationFailed("give audiences or allow_any_audience, not both")
        if jwks_ca_cert:
            _check_ca(jwks_ca_cert, "jwks_ca_cert")
        if token_review is not None:
            _check_url(token_review.host, "token_review.host")
            if token_review.ca_cert:
                _check_ca(token_review.ca_cert, "token_review.ca_cert")
        config = KubernetesConfig(
            issuer,
            _check_keys(public_keys),
            tuple(audiences) or (() if allow_any_audience else DEFAULT_AUDIENCES),
            jwks_url=_check_url(jwks_url, "jwks_url"),
            oidc_discovery_url=_check_url(oidc_discovery_url, "oidc_discovery_url"),
            jwks_ca_cert=jwks_ca_cert or None,
            token_review=token_review,
            allow_any_audience=allow_any_audience,
            leeway=leeway,
        )
        value = json.dumps(config.to_json())
        with database_errors(self._engine), self._engine.begin() as connection:
            updated = connection.execute(
                update(InstanceState).where(InstanceState.key == key).values(value=value)
            ).rowcount
            if not updated:
                connection.execute(insert(InstanceState), [{"key": key, "value": value}])
        return config

    def config(self, cluster: str = DEFAULT_CLUSTER) -> KubernetesConfig:
        key = _config_key(cluster)
        with database_errors(self._engine), self._engine.connect() as connection:
            raw = connection.execute(
                select(InstanceState.value).where(InstanceState.key == key)
            ).scalar()
        if raw is None:
            where = (
                "/v1/auth/kubernetes/config"
                if cluster == DEFAULT_CLUSTER
                else f"/v1/auth/kubernetes/clusters/{cluster}/config"
            )
            raise NotFound(
                f"Kubernetes login is not configured for cluster {cluster!r}; PUT {where} first"
            )
        return KubernetesConfig.from_json(json.loads(raw))

    def delete_config(self, cluster: str) -> None:
        key = _config_key(cluster)
        with database_errors(self._engine), self._engine.begin() as connection:
            removed = connection.execute(
                delete(InstanceState).where(InstanceState.key == key)
            ).rowcount
        if not removed:
            raise NotFound(f"Kubernetes login is not configured for cluster {cluster!r}")

    def list_clusters(self) -> list[str]:
        """Every configured cluster (``default`` when the original config is set)."""
        with database_errors(self._engine), self._engine.connect() as connection:
            keys = connection.execute(
                select(InstanceState.key).where(
                    (InstanceState.key == _CONFIG_KEY)
                    | InstanceState.key.startswith(_CLUSTER_KEY, autoescape=True)
                )
            ).scalars()
            return sorted(
                DEFAULT_CLUSTER if k == _CONFIG_KEY else k.removeprefix(_CLUSTER_KEY) for k in keys
            )

    def roles_of_cluster(self, cluster: str) -> list[KubernetesRoleInfo]:
        with database_errors(self._engine), self._engine.connect() as connection:
            rows = connection.execute(
                select(KubernetesRole).where(KubernetesRole.cluster == cluster)
            ).all()
        return [_role_info(row) for row in rows]

    def put_role(
        self,
        name: str,
        *,
        service_accounts: Sequence[str],
        namespaces: Sequence[str],
        policies: Sequence[str],
        token_ttl: int,
        token_max_ttl: int,
        cluster: str = DEFAULT_CLUSTER,
    ) -> KubernetesRoleInfo:
        validate_policy_name(name)
        validate_cluster_name(cluster)
        for policy in policies:
            validate_policy_name(policy)
        if not service_accounts or not namespaces:
            raise ValidationFailed(
                "bound_service_account_names and bound_service_account_namespaces must each "
                "name at least one entry ('*' for any)"
            )
        if token_ttl <= 0 or token_max_ttl < token_ttl:
            raise ValidationFailed(
                "token_ttl must be positive and token_max_ttl at least token_ttl"
            )
        values = {
            "service_accounts": json.dumps(sorted(set(service_accounts))),
            "namespaces": json.dumps(sorted(set(namespaces))),
            "policies": json.dumps(sorted(set(policies))),
            "token_ttl": token_ttl,
            "token_max_ttl": token_max_ttl,
            "cluster": cluster,
        }
        with database_errors(self._engine), self._engine.begin() as connection:
            updated = connection.execute(
                update(KubernetesRole).where(KubernetesRole.name == name).values(**values)
            ).rowcount
            if not updated:
                connection.execute(
                    insert(KubernetesRole), [{"name": name, "created_at": time.time(), **values}]
                )
        return self.get_role(name)

    def get_role(self, name: str) -> KubernetesRoleInfo:
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(
                select(KubernetesRole).where(KubernetesRole.name == name)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no Kubernetes role named {name!r}")
        return _role_info(row)

    def list_roles(self) -> list[str]:
        with database_errors(self._engine), self._engine.connect() as connection:
            return sorted(connection.execute(select(KubernetesRole.name)).scalars().all())

    def delete_role(self, name: str) -> None:
        with database_errors(self._engine), self._engine.begin() as connection:
            removed = connection.execute(
                delete(KubernetesRole).where(KubernetesRole.name == name)
            ).rowcount
        if not removed:
            raise NotFound(f"no Kubernetes role named {name!r}")

    # -- login ----------------------------------------------------------------

    def _remote_keys(self, config: KubernetesConfig) -> RemoteKeys | None:
        if not (config.jwks_url or config.oidc_discovery_url):
            return None
        key = (
            config.issuer,
            config.jwks_url or "",
            config.oidc_discovery_url or "",
            config.jwks_ca_cert or "",
        )
        remote = self._remote.get(key)
        if remote is None:
            remote = self._remote[key] = RemoteKeys(
                issuer=config.issuer,
                jwks_url=config.jwks_url,
                discovery_url=config.oidc_discovery_url,
                ca_cert=config.jwks_ca_cert,
            )
        return remote

    def _reviewer(self, review: TokenReviewConfig) -> TokenReviewer:
        key = (review.host, review.ca_cert or "", review.token_file or "")
        reviewer = self._reviewers.get(key)
        if reviewer is None:
            from pathlib import Path

            reviewer = self._reviewers[key] = TokenReviewer(
                review.host,
                review.ca_cert,
                Path(review.token_file) if review.token_file else None,
            )
        return reviewer

    def _candidate_keys(self, config: KubernetesConfig, token: str) -> list[tuple[Any, list[str]]]:
        remote = self._remote_keys(config)
        if remote is not None:
            jwk = remote.key_for(token)
            algorithms = _RSA if jwk.key_type == "RSA" else _EC if jwk.key_type == "EC" else []
            return [(jwk.key, algorithms)]
        found: list[tuple[Any, list[str]]] = []
        for pem in config.public_keys:
            key = load_pem_public_key(pem.encode("ascii"))
            # An RSA key only verifies RS*, an EC key only ES*: never let the token choose.
            found.append((key, _RSA if isinstance(key, rsa.RSAPublicKey) else _EC))
        return found

    def verify(
        self, token: str, cluster: str = DEFAULT_CLUSTER
    ) -> tuple[ServiceAccount, dict[str, Any]]:
        """Check signature, issuer, expiry and audience against ``cluster``'s configuration;
        LoginRefused with the reason."""
        try:
            config = self.config(cluster)
        except NotFound:
            raise LoginRefused(
                f"Kubernetes login is not configured for cluster {cluster!r}"
            ) from None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise LoginRefused("the JWT is malformed") from None
        legacy = unverified.get("iss") == LEGACY_ISSUER
        options: dict[str, Any] = {"require": ["iss"] if legacy else ["iss", "exp"]}
        audience = None if config.allow_any_audience else list(config.audiences)
        if audience is None or legacy:
            options["verify_aud"] = False
        if not (config.public_keys or config.jwks_url or config.oidc_discovery_url):
            return self._review_only(config, token, unverified)
        last = "no public key verifies the signature"
        for key, algorithms in self._candidate_keys(config, token):
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    issuer=config.issuer,
                    audience=audience,
                    options=options,  # type: ignore[arg-type]
                    leeway=config.leeway,
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
                continue
            except jwt.ExpiredSignatureError:
                raise LoginRefused("the JWT has expired") from None
            except jwt.ImmatureSignatureError:
                raise LoginRefused("the JWT is not valid yet (nbf/iat in the future)") from None
            except jwt.InvalidIssuerError:
                raise LoginRefused(f"the JWT's issuer is not {config.issuer}") from None
            except jwt.InvalidAudienceError:
                raise LoginRefused("the JWT's audience is not accepted") from None
            except jwt.PyJWTError as error:
                last = f"the JWT is invalid ({type(error).__name__})"
                continue
            account = service_account_of(claims)
            if config.token_review is not None:
                reviewed = self._reviewer(config.token_review).review(
                    token, () if config.allow_any_audience else config.audiences
                )
                if (reviewed.namespace, reviewed.name) != (account.namespace, account.name):
                    raise LoginRefused("TokenReview names another service account")
            return account, claims
        raise LoginRefused(last)

    def _review_only(
        self, config: KubernetesConfig, token: str, unverified: dict[str, Any]
    ) -> tuple[ServiceAccount, dict[str, Any]]:
        """No key source: the API server's TokenReview decides (signature, expiry, audience)."""
        assert config.token_review is not None
        if unverified.get("iss") != config.issuer:
            raise LoginRefused(f"the JWT's issuer is not {config.issuer}")
        reviewed = self._reviewer(config.token_review).review(
            token, () if config.allow_any_audience else config.audiences
        )
        account = ServiceAccount(reviewed.namespace, reviewed.name, reviewed.uid)
        return account, unverified

    def login(self, role_name: str, token: str) -> tuple[ServiceAccount, IssuedToken]:
        try:
            role = self.get_role(role_name)
        except NotFound:
            raise LoginRefused(f"unknown role {role_name!r}", unknown_role=True) from None
        account, _ = self.verify(token, role.cluster)
        if not _matches(account.namespace, role.namespaces):
            raise LoginRefused(
                f"namespace {account.namespace!r} is not bound to role {role.name!r}"
            )
        if not _matches(account.name, role.service_accounts):
            raise LoginRefused(
                f"service account {account.name!r} is not bound to role {role.name!r}"
            )
        issued = self._tokens.create(
            policies=role.policies,
            display_name=f"k8s-{account.namespace}-{account.name}",
            ttl_seconds=role.token_ttl,
            max_ttl_seconds=role.token_max_ttl,
            method="kubernetes",
            meta={
                "role": role.name,
                "namespace": account.namespace,
                "service_account": account.name,
                "service_account_uid": account.uid,
                "cluster": role.cluster,
            },
        )
        return account, issued
