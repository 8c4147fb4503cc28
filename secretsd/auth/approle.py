"""AppRole-style host logins: a role_id (like a user name) and a secret_id (like a password).

An admin creates a role (policies, token TTLs, optional CIDR binding) and
issues secret-ids: unlimited, single-use or limited-use, optionally
expiring, each revocable by its accessor. A host trades ``role_id`` +
``secret_id`` for a short-lived token. secret-ids are stored as SHA-256 and
their use count is decremented atomically, so two hosts racing with one
single-use secret-id cannot both log in.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from secretsd.auth.tokens import IssuedToken, TokenStore, iso_time
from secretsd.db.engine import database_errors
from secretsd.db.models import AppRole, AppRoleSecretId
from secretsd.errors import NotFound, ValidationFailed
from secretsd.policy import validate_policy_name

__all__ = [
    "REFUSED_MESSAGE",
    "AppRoleStore",
    "LoginRefused",
    "RoleInfo",
    "SecretIdInfo",
    "check_cidrs",
]

REFUSED_MESSAGE = (
    "AppRole login refused: the role_id/secret_id pair is unknown, used up, expired, revoked "
    "or not allowed from this address"
)


class LoginRefused(Exception):
    """Why a login was refused, for the audit record (users see REFUSED_MESSAGE).

    ``unknown_role`` says the login named no existing role: the rate limiter
    counts those against one budget per client, not one per made-up name.
    """

    def __init__(self, reason: str, *, unknown_role: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_role = unknown_role


def _hash(secret_id: str) -> str:
    return hashlib.sha256(secret_id.encode("utf-8")).hexdigest()


def check_cidrs(cidrs: Sequence[str]) -> list[str]:
    """Normalise CIDR blocks; ValidationFailed naming the bad one."""
    normalised = []
    for cidr in cidrs:
        try:
            normalised.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            raise ValidationFailed(
                f"{cidr[:60]!r} is not a CIDR block; write e.g. 10.0.0.0/8 or 192.168.1.7/32"
            ) from None
    return normalised


def _in_cidrs(address: str, cidrs: Sequence[str]) -> bool:
    if not cidrs:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(cidr) for cidr in cidrs)


@dataclass(frozen=True, slots=True)
class RoleInfo:
    name: str
    role_id: str
    policies: tuple[str, ...]
    token_ttl: int
    token_max_ttl: int
    bound_cidrs: tuple[str, ...]
    secret_id_ttl: int | None
    secret_id_num_uses: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role_id": self.role_id,
            "policies": list(self.policies),
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "bound_cidrs": list(self.bound_cidrs),
            "secret_id_ttl": self.secret_id_ttl,
            "secret_id_num_uses": self.secret_id_num_uses,
        }


@dataclass(frozen=True, slots=True)
class SecretIdInfo:
    accessor: str
    role_name: str
    created_at: float
    expires_at: float | None
    uses_remaining: int | None
    revoked: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "secret_id_accessor": self.accessor,
            "role": self.role_name,
            "created_at": iso_time(self.created_at),
            "expires_at": iso_time(self.expires_at),
            "uses_remaining": self.uses_remaining,
            "revoked": self.revoked,
        }


def _role(row: Any) -> RoleInfo:
    return RoleInfo(
        name=row.name,
        role_id=row.role_id,
        policies=tuple(json.loads(row.policies)),
        token_ttl=row.token_ttl,
        token_max_ttl=row.token_max_ttl,
        bound_cidrs=tuple(json.loads(row.bound_cidrs)),
        secret_id_ttl=row.secret_id_ttl,
        secret_id_num_uses=row.secret_id_num_uses,
    )


def _secret_id(row: Any) -> SecretIdInfo:
    return SecretIdInfo(
        accessor=row.accessor,
        role_name=row.role_name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        uses_remaining=row.uses_remaining,
        revoked=row.revoked_at is not None,
    )


class AppRoleStore:
    def __init__(self, engine: Engine, tokens: TokenStore) -> None:
        self._engine = engine
        self._tokens = tokens

    def put_role(
        self,
        name: str,
        *,
        policies: Sequence[str],
        token_ttl: int,
        token_max_ttl: int,
        bound_cidrs: Sequence[str] = (),
        secret_id_ttl: int | None = None,
        secret_id_num_uses: int | None = None,
    ) -> RoleInfo:
        """Create or update a role; its role_id stays the same across updates."""
        validate_policy_name(name)
        for policy in policies:
            validate_policy_name(policy)
        if token_ttl <= 0 or token_max_ttl < token_ttl:
            raise ValidationFailed(
                "token_ttl must be positive and token_max_ttl at least token_ttl"
            )
        if secret_id_num_uses is not None and secret_id_num_uses < 0:
            raise ValidationFailed("secret_id_num_uses must be 0 (unlimited) or more")
        values = {
            "policies": json.dumps(sorted(set(policies))),
            "token_ttl": token_ttl,
            "token_max_ttl": token_max_ttl,
            "bound_cidrs": json.dumps(check_cidrs(bound_cidrs)),
            "secret_id_ttl": secret_id_ttl or None,
            "secret_id_num_uses": secret_id_num_uses or None,
        }
        with database_errors(self._engine), self._engine.begin() as connection:
            updated = connection.execute(
                update(AppRole).where(AppRole.name == name).values(**values)
            ).rowcount
            if not updated:
                connection.execute(
                    insert(AppRole),
                    [
                        {
                            "name": name,
                            "role_id": secrets.token_hex(16),
                            "created_at": time.time(),
                            **values,
                        }
                    ],
                )
        return self.get_role(name)

    def get_role(self, name: str) -> RoleInfo:
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(select(AppRole).where(AppRole.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"no AppRole role named {name!r}")
        return _role(row)

    def list_roles(self) -> list[str]:
        with database_errors(self._engine), self._engine.connect() as connection:
            return sorted(connection.execute(select(AppRole.name)).scalars().all())

    def role_ids(self) -> list[str]:
        """Every role's ``role_id`` (what a login names), for the login gate's index."""
        with database_errors(self._engine), self._engine.connect() as connection:
            return list(connection.execute(select(AppRole.role_id)).scalars().all())

    def delete_role(self, name: str) -> None:
        with database_errors(self._engine), self._engine.begin() as connection:
            removed = connection.execute(delete(AppRole).where(AppRole.name == name)).rowcount
            connection.execute(delete(AppRoleSecretId).where(AppRoleSecretId.role_name == name))
        if not removed:
            raise NotFound(f"no AppRole role named {name!r}")

    def issue_secret_id(
        self,
        name: str,
        *,
        num_uses: int | None = None,
        ttl_seconds: int | None = None,
        bound_cidrs: Sequence[str] = (),
        meta: dict[str, str] | None = None,
    ) -> tuple[str, SecretIdInfo]:
        """A new secret-id (shown once) and its accessor; defaults come from the role."""
        role = self.get_role(name)
        uses = role.secret_id_num_uses if num_uses is None else num_uses
        ttl = role.secret_id_ttl if ttl_seconds is None else ttl_seconds
        if uses is not None and uses < 0:
            raise ValidationFailed("num_uses must be 0 (unlimited) or more")
        value = secrets.token_urlsafe(32)
        now = time.time()
        info = SecretIdInfo(
            accessor=secrets.token_hex(12),
            role_name=name,
            created_at=now,
            expires_at=now + ttl if ttl else None,
            uses_remaining=uses or None,
            revoked=False,
        )
        row = {
            "role_name": name,
            "secret_id_hash": _hash(value),
            "accessor": info.accessor,
            "created_at": now,
            "expires_at": info.expires_at,
            "uses_remaining": info.uses_remaining,
            "bound_cidrs": json.dumps(check_cidrs(bound_cidrs)),
            "revoked_at": None,
            "meta": json.dumps(meta or {}),
        }
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(insert(AppRoleSecretId), [row])
        return value, info

    def list_secret_ids(self, name: str) -> list[SecretIdInfo]:
        self.get_role(name)
        with database_errors(self._engine), self._engine.connect() as connection:
            rows = connection.execute(
                select(AppRoleSecretId)
                .where(AppRoleSecretId.role_name == name)
                .order_by(AppRoleSecretId.id)
            ).all()
        return [_secret_id(row) for row in rows]

    def revoke_secret_id(self, name: str, accessor: str) -> None:
        with database_errors(self._engine), self._engine.begin() as connection:
            result = connection.execute(
                update(AppRoleSecretId)
                .where(AppRoleSecretId.role_name == name, AppRoleSecretId.accessor == accessor)
                .values(revoked_at=time.time())
            )
        if not result.rowcount:
            raise NotFound(f"role {name!r} has no secret-id with accessor {accessor!r}")

    def login(self, role_id: str, secret_id: str, client: str) -> tuple[RoleInfo, IssuedToken]:
        """Trade role_id + secret_id for a token, or raise LoginRefused with the reason.

        The reason is for the audit record only: callers get one message
        (:data:`REFUSED_MESSAGE`), which never tells which half was wrong.
        """
        with database_errors(self._engine), self._engine.begin() as connection:
            role_row = connection.execute(
                select(AppRole).where(AppRole.role_id == role_id)
            ).one_or_none()
            if role_row is None:
                raise LoginRefused("unknown role_id", unknown_role=True)
            role = _role(role_row)
            secret_row = connection.execute(
                select(AppRoleSecretId).where(
                    AppRoleSecretId.secret_id_hash == _hash(secret_id),
                    AppRoleSecretId.role_name == role.name,
                )
            ).one_or_none()
            if secret_row is None:
                raise LoginRefused("unknown secret_id")
            if secret_row.revoked_at is not None:
                raise LoginRefused("secret_id revoked")
            if secret_row.expires_at is not None and secret_row.expires_at <= time.time():
                raise LoginRefused("secret_id expired")
            cidrs = [*role.bound_cidrs, *json.loads(secret_row.bound_cidrs)]
            if not _in_cidrs(client, cidrs):
                raise LoginRefused(f"client {client} outside bound CIDRs")
            if secret_row.uses_remaining is not None:
                used = connection.execute(
                    update(AppRoleSecretId)
                    .where(AppRoleSecretId.id == secret_row.id, AppRoleSecretId.uses_remaining > 0)
                    .values(uses_remaining=AppRoleSecretId.uses_remaining - 1)
                ).rowcount
                if not used:
                    raise LoginRefused("secret_id used up")
        issued = self._tokens.create(
            policies=role.policies,
            display_name=f"approle-{role.name}",
            ttl_seconds=role.token_ttl,
            max_ttl_seconds=role.token_max_ttl,
            method="approle",
            meta={"role": role.name, "secret_id_accessor": secret_row.accessor},
        )
        return role, issued
