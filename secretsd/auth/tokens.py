"""API tokens: 256-bit random values, shown once, stored only as SHA-256.

A token's accessor is a second random handle that is safe to log, list and
put in audit records; it names the token without granting anything.

Tokens have a TTL (renewable up to a max TTL) or none (``ttl=0``: until
revoked). Lookups are the hot path of every request, so each worker keeps
identities in memory briefly; revocations and renewals publish a change
event that every worker and replica polls, so a revoked token stops working
within the change-poll interval everywhere.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from secretsd.db.engine import database_errors
from secretsd.db.models import InstanceState, Token
from secretsd.errors import InvalidInput, NotFound, Unauthenticated, ValidationFailed

__all__ = [
    "DEFAULT_MAX_TTL",
    "DEFAULT_TTL",
    "TOKEN_PREFIX",
    "Identity",
    "IssuedToken",
    "TokenInfo",
    "TokenStore",
    "hash_token",
    "iso_time",
    "new_token_value",
]

TOKEN_PREFIX = "sdt_"  # noqa: S105 - a prefix, not a secret
ADMIN_POLICY = "admin"
DEFAULT_TTL = 24 * 3600
DEFAULT_MAX_TTL = 32 * 24 * 3600
_BOOTSTRAP_KEY = "admin_token_bootstrapped"


def new_token_value() -> str:
    """A fresh token: a recognisable prefix and 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: safe to log (no token inside)."""

    accessor: str
    display_name: str
    policies: tuple[str, ...]
    method: str
    expires_at: float | None

    @property
    def is_admin(self) -> bool:
        return ADMIN_POLICY in self.policies


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """Everything about a token but its value (for lookups and listings)."""

    accessor: str
    display_name: str
    policies: tuple[str, ...]
    method: str
    created_at: float
    expires_at: float | None
    max_expires_at: float | None
    ttl_seconds: int | None
    renewable: bool
    revoked_at: float | None
    meta: dict[str, str]

    @property
    def identity(self) -> Identity:
        return Identity(
            self.accessor, self.display_name, self.policies, self.method, self.expires_at
        )

    def remaining(self, now: float | None = None) -> int | None:
        if self.expires_at is None:
            return None
        return max(0, int(self.expires_at - (now or time.time())))

    def to_json(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "display_name": self.display_name,
            "policies": list(self.policies),
            "method": self.method,
            "created_at": iso_time(self.created_at),
            "expires_at": iso_time(self.expires_at),
            "max_expires_at": iso_time(self.max_expires_at),
            "ttl": self.remaining(),
            "renewable": self.renewable,
            "revoked": self.revoked_at is not None,
            "meta": self.meta,
        }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A newly created token: the only time its value exists outside the caller."""

    token: str
    info: TokenInfo

    @property
    def identity(self) -> Identity:
        return self.info.identity

    def __repr__(self) -> str:
        return f"IssuedToken(accessor={self.info.accessor!r}, token=<hidden>)"

    def to_json(self) -> dict[str, Any]:
        body = self.info.to_json()
        body["token"] = self.token
        return body


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        accessor=row.accessor,
        display_name=row.display_name,
        policies=tuple(json.loads(row.policies)),
        method=row.login_method,
        created_at=row.created_at,
        expires_at=row.expires_at,
        max_expires_at=row.max_expires_at,
        ttl_seconds=row.ttl_seconds,
        renewable=bool(row.renewable),
        revoked_at=row.revoked_at,
        meta=json.loads(row.meta or "{}"),
    )


class TokenStore:
    """Create, look up, renew and revoke tokens in secretsd's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        *,
        policies: Sequence[str],
        display_name: str = "",
        ttl_seconds: int | None = None,
        max_ttl_seconds: int | None = None,
        renewable: bool = True,
        method: str = "token",
        token: str | None = None,
        meta: dict[str, str] | None = None,
        not_after: float | None = None,
        parent: str | None = None,
    ) -> IssuedToken:
        """Issue a token. ``ttl_seconds=0`` means no expiry; None means the default (24 h).

        ``not_after`` (the creator's expiry) caps the lifetime, renewals
        included: a child never outlives its creator. ``parent`` (the
        creator's accessor) makes revoking the creator revoke the child.
        """
        if token is not None and len(token) < 16:
            raise InvalidInput("a chosen token must be at least 16 characters long")
        ttl = DEFAULT_TTL if ttl_seconds is None else ttl_seconds
        max_ttl = DEFAULT_MAX_TTL if max_ttl_seconds is None else max_ttl_seconds
        if ttl and max_ttl and ttl > max_ttl:
            raise ValidationFailed(f"ttl ({ttl} s) is longer than max_ttl ({max_ttl} s)")
        value = token or new_token_value()
        now = time.time()
        expires_at = now + ttl if ttl else None
        max_expires_at = now + max_ttl if ttl and max_ttl else None
        if not_after is not None:
            expires_at = min(expires_at or not_after, not_after)
            max_expires_at = min(max_expires_at or not_after, not_after)
            ttl = max(1, round(expires_at - now))
        info = TokenInfo(
            accessor=secrets.token_hex(12),
            display_name=display_name[:200],
            policies=tuple(sorted(set(policies))),
            method=method,
            created_at=now,
            expires_at=expires_at,
            max_expires_at=max_expires_at,
            ttl_seconds=ttl or None,
            renewable=renewable and bool(ttl),
            revoked_at=None,
            meta=dict(meta or {}),
        )
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(insert(Token), [self._row(value, info, parent)])
        return IssuedToken(value, info)

    @staticmethod
    def _row(value: str, info: TokenInfo, parent: str | None = None) -> dict[str, Any]:
        return {
            "parent_accessor": parent,
            "token_hash": hash_token(value),
            "accessor": info.accessor,
            "display_name": info.display_name,
            "policies": json.dumps(list(info.policies)),
            "login_method": info.method,
            "created_at": info.created_at,
            "expires_at": info.expires_at,
            "max_expires_at": info.max_expires_at,
            "ttl_seconds": info.ttl_seconds,
            "renewable": info.renewable,
            "revoked_at": None,
            "meta": json.dumps(info.meta),
        }

    # -- lookups ----------------------------------------------------------

    def _by(self, column: Any, value: str) -> TokenInfo | None:
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(select(Token).where(column == value)).one_or_none()
        return _info(row) if row is not None else None

    def authenticate_hash(self, token_hash: str) -> Identity:
        """The live identity behind a token hash, or Unauthenticated saying why not."""
        info = self._by(Token.token_hash, token_hash)
        return self._live(info).identity

    @staticmethod
    def _live(info: TokenInfo | None) -> TokenInfo:
        if info is None:
            raise Unauthenticated(
                "the token is unknown; check SECRETSD_TOKEN, log in again or ask an admin for one"
            )
        if info.revoked_at is not None:
            raise Unauthenticated(
                f"the token (accessor {info.accessor}) was revoked at {iso_time(info.revoked_at)}; "
                "log in again or ask an admin for a new token"
            )
        if info.expires_at is not None and info.expires_at <= time.time():
            raise Unauthenticated(
                f"the token (accessor {info.accessor}) expired at {iso_time(info.expires_at)}; "
                "log in again, or renew tokens before they expire"
            )
        return info

    def lookup_accessor(self, accessor: str) -> TokenInfo:
        info = self._by(Token.accessor, accessor)
        if info is None:
            raise NotFound(f"no token has accessor {accessor!r}")
        return info

    def lookup_token(self, token: str) -> TokenInfo:
        info = self._by(Token.token_hash, hash_token(token))
        if info is None:
            raise NotFound("no such token")
        return info

    def list(self, *, limit: int = 100, include_revoked: bool = False) -> list[TokenInfo]:
        query = select(Token).order_by(Token.id.desc()).limit(limit)
        if not include_revoked:
            query = query.where(Token.revoked_at.is_(None))
        with database_errors(self._engine), self._engine.connect() as connection:
            return [_info(row) for row in connection.execute(query).all()]

    # -- changes ------------------------------------------------------------

    def renew(
        self,
        accessor: str,
        increment_seconds: int | None = None,
        not_after: float | None = None,
    ) -> TokenInfo:
        """Push expiry to now + increment (default: the token's TTL), capped by its max TTL
        (and by ``not_after``, the renewer's own expiry, when renewing another's token)."""
        info = self._live(self._by(Token.accessor, accessor))
        if not info.renewable or info.ttl_seconds is None:
            raise ValidationFailed(
                f"token {accessor} is not renewable (it has no TTL or was issued non-renewable)"
            )
        now = time.time()
        wanted = now + (increment_seconds if increment_seconds else info.ttl_seconds)
        expires = min(wanted, info.max_expires_at) if info.max_expires_at else wanted
        if not_after is not None:
            expires = min(expires, max(not_after, info.expires_at or not_after))
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(
                update(Token)
                .where(Token.accessor == accessor, Token.revoked_at.is_(None))
                .values(expires_at=expires)
            )
        return self.lookup_accessor(accessor)

    def revoke_accessor(self, accessor: str) -> builtins.list[str]:
        """Revoke a token and every token it created, transitively; return their accessors.

        Revoking is idempotent: an already revoked token is no error (its
        children are revoked all the same).
        """
        revoked: builtins.list[str] = []
        with database_errors(self._engine), self._engine.begin() as connection:
            found = connection.execute(
                select(Token.accessor).where(Token.accessor == accessor)
            ).one_or_none()
            if found is None:
                raise NotFound(f"no token has accessor {accessor!r}")
            now = time.time()
            level = [accessor]
            seen = {accessor}
            while level:
                connection.execute(
                    update(Token)
                    .where(Token.accessor.in_(level), Token.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                revoked.extend(level)
                children = connection.execute(
                    select(Token.accessor).where(Token.parent_accessor.in_(level))
                ).scalars()
                level = [child for child in children if child not in seen]
                seen.update(level)
        return revoked

    def bootstrap_admin(self, chosen: str | None) -> IssuedToken | None:
        """Create the first admin token once per database; None if one already exists.

        Several replicas may start at once on one database: the unique key of
        the marker row lets exactly one of them create the token.
        """
        with database_errors(self._engine), self._engine.connect() as connection:
            done = connection.execute(
                select(InstanceState.value).where(InstanceState.key == _BOOTSTRAP_KEY)
            ).one_or_none()
        if done is not None:
            return None
        value = chosen or new_token_value()
        if len(value) < 16:
            raise InvalidInput(
                "SECRETSD_BOOTSTRAP_TOKEN must be at least 16 characters long; choose a longer one"
            )
        now = time.time()
        info = TokenInfo(
            accessor=secrets.token_hex(12),
            display_name="admin (bootstrap)",
            policies=(ADMIN_POLICY,),
            method="bootstrap",
            created_at=now,
            expires_at=None,
            max_expires_at=None,
            ttl_seconds=None,
            renewable=False,
            revoked_at=None,
            meta={},
        )
        try:
            with database_errors(self._engine), self._engine.begin() as connection:
                connection.execute(
                    insert(InstanceState), [{"key": _BOOTSTRAP_KEY, "value": str(now)}]
                )
                connection.execute(insert(Token), [self._row(value, info)])
        except IntegrityError:
            return None  # another replica won the race
        return IssuedToken(value, info)
