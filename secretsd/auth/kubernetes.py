"""Kubernetes service-account logins: a pod trades its service-account JWT for a token.

secretsd checks the JWT itself, against the cluster's service-account issuer
and its signing public keys (``kubectl get --raw /openid/v1/jwks`` or the
API server's ``--service-account-key-file``), the way Vault's kubernetes
auth does with ``disable_local_ca_jwt`` and static keys. It does not call the
API server's TokenReview, so secretsd needs no credentials for the cluster;
the trade-off is that a deleted service account's unexpired token stays valid
until it expires (projected tokens live an hour by default).

A role binds service-account names and namespaces (``*`` = any) to policies.
Both token layouts are understood: projected tokens (``kubernetes.io`` claim,
``exp`` required) and legacy secret-based tokens (``kubernetes.io/serviceaccount/*``
claims, issuer ``kubernetes/serviceaccount``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import Engine, delete, insert, select, update

from secretsd.auth.approle import LoginRefused
from secretsd.auth.tokens import IssuedToken, TokenStore
from secretsd.db.engine import database_errors
from secretsd.db.models import InstanceState, KubernetesRole
from secretsd.errors import NotFound, ValidationFailed
from secretsd.policy import validate_policy_name

__all__ = ["KubernetesAuth", "KubernetesConfig", "KubernetesRoleInfo", "ServiceAccount"]

_CONFIG_KEY = "kubernetes_auth_config"
LEGACY_ISSUER = "kubernetes/serviceaccount"
_RSA = ["RS256", "RS384", "RS512"]
_EC = ["ES256", "ES384", "ES512"]


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    issuer: str
    public_keys: tuple[str, ...]
    audiences: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "public_keys": list(self.public_keys),
            "audiences": list(self.audiences),
        }


@dataclass(frozen=True, slots=True)
class KubernetesRoleInfo:
    name: str
    service_accounts: tuple[str, ...]
    namespaces: tuple[str, ...]
    policies: tuple[str, ...]
    token_ttl: int
    token_max_ttl: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
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


def _check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    if not keys:
        raise ValidationFailed(
            "public_keys is empty; give the cluster's service-account keys (PEM)"
        )
    for index, key in enumerate(keys, start=1):
        try:
            load_pem_public_key(key.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ValidationFailed(
                f"public key {index} is not a PEM public key ('-----BEGIN PUBLIC KEY-----'); "
                "export it with `openssl rsa -pubout` or from /openid/v1/jwks"
            ) from None
    return tuple(keys)


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


class KubernetesAuth:
    def __init__(self, engine: Engine, tokens: TokenStore) -> None:
        self._engine = engine
        self._tokens = tokens

    # -- configuration ------------------------------------------------------

    def configure(
        self, issuer: str, public_keys: Sequence[str], audiences: Sequence[str] = ()
    ) -> KubernetesConfig:
        if not issuer:
            raise ValidationFailed(
                "issuer is empty; give the service-account issuer, e.g. "
                "https://kubernetes.default.svc.cluster.local (or kubernetes/serviceaccount)"
            )
        config = KubernetesConfig(issuer, _check_keys(public_keys), tuple(audiences))
        value = json.dumps(config.to_json())
        with database_errors(self._engine), self._engine.begin() as connection:
            updated = connection.execute(
                update(InstanceState).where(InstanceState.key == _CONFIG_KEY).values(value=value)
            ).rowcount
            if not updated:
                connection.execute(insert(InstanceState), [{"key": _CONFIG_KEY, "value": value}])
        return config

    def config(self) -> KubernetesConfig:
        with database_errors(self._engine), self._engine.connect() as connection:
            raw = connection.execute(
                select(InstanceState.value).where(InstanceState.key == _CONFIG_KEY)
            ).scalar()
        if raw is None:
            raise NotFound(
                "Kubernetes login is not configured; PUT /v1/auth/kubernetes/config first"
            )
        data = json.loads(raw)
        return KubernetesConfig(
            data["issuer"], tuple(data["public_keys"]), tuple(data.get("audiences", ()))
        )

    def put_role(
        self,
        name: str,
        *,
        service_accounts: Sequence[str],
        namespaces: Sequence[str],
        policies: Sequence[str],
        token_ttl: int,
        token_max_ttl: int,
    ) -> KubernetesRoleInfo:
        validate_policy_name(name)
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
        return KubernetesRoleInfo(
            name=row.name,
            service_accounts=tuple(json.loads(row.service_accounts)),
            namespaces=tuple(json.loads(row.namespaces)),
            policies=tuple(json.loads(row.policies)),
            token_ttl=row.token_ttl,
            token_max_ttl=row.token_max_ttl,
        )

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

    def verify(self, token: str) -> tuple[ServiceAccount, dict[str, Any]]:
        """Check signature, issuer, expiry and audience; LoginRefused with the reason."""
        try:
            config = self.config()
        except NotFound:
            raise LoginRefused("Kubernetes login is not configured") from None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise LoginRefused("the JWT is malformed") from None
        legacy = unverified.get("iss") == LEGACY_ISSUER
        options: dict[str, Any] = {"require": ["iss"] if legacy else ["iss", "exp"]}
        audience = list(config.audiences) or None
        if audience is None or legacy:
            options["verify_aud"] = False
        last = "no public key verifies the signature"
        for pem in config.public_keys:
            key = load_pem_public_key(pem.encode("ascii"))
            # An RSA key only verifies RS*, an EC key only ES*: never let the token choose.
            algorithms = _RSA if isinstance(key, rsa.RSAPublicKey) else _EC
            try:
                claims = jwt.decode(
                    token,
                    key,  # type: ignore[arg-type]
                    algorithms=algorithms,
                    issuer=config.issuer,
                    audience=audience,
                    options=options,  # type: ignore[arg-type]
                    leeway=30,
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
                continue
            except jwt.ExpiredSignatureError:
                raise LoginRefused("the JWT has expired") from None
            except jwt.InvalidIssuerError:
                raise LoginRefused(f"the JWT's issuer is not {config.issuer}") from None
            except jwt.InvalidAudienceError:
                raise LoginRefused("the JWT's audience is not accepted") from None
            except jwt.PyJWTError as error:
                last = f"the JWT is invalid ({type(error).__name__})"
                continue
            return service_account_of(claims), claims
        raise LoginRefused(last)

    def login(self, role_name: str, token: str) -> tuple[ServiceAccount, IssuedToken]:
        try:
            role = self.get_role(role_name)
        except NotFound:
            raise LoginRefused(f"unknown role {role_name!r}") from None
        account, _ = self.verify(token)
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
            },
        )
        return account, issued
