"""API tokens: 256-bit random values, shown once, stored only as SHA-256.

A token's accessor is a second random handle that is safe to log, list and
put in audit records; it names the token without granting anything.

Lookups are the hot path of every request, so each worker keeps identities
in memory for a short time. Revocations and renewals publish a change event
that every worker and replica polls, so a revoked token stops working within
the change-poll interval everywhere.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from secretsd.db.engine import database_errors
from secretsd.db.models import InstanceState, Token
from secretsd.errors import InvalidInput, NotFound

__all__ = [
    "TOKEN_PREFIX",
    "Identity",
    "IssuedToken",
    "TokenStore",
    "hash_token",
    "new_token_value",
]

TOKEN_PREFIX = "sdt_"  # noqa: S105 - a prefix, not a secret
ADMIN_POLICY = "admin"
_BOOTSTRAP_KEY = "admin_token_bootstrapped"


def new_token_value() -> str:
    """A fresh token: a recognisable prefix and 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
class IssuedToken:
    """A newly created token: the only time its value exists outside the caller."""

    token: str
    identity: Identity

    def __repr__(self) -> str:
        return f"IssuedToken(accessor={self.identity.accessor!r}, token=<hidden>)"


def _identity(row: Any) -> Identity:
    return Identity(
        accessor=row.accessor,
        display_name=row.display_name,
        policies=tuple(json.loads(row.policies)),
        method=row.login_method,
        expires_at=row.expires_at,
    )


class TokenStore:
    """Create and look up tokens in secretsd's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        *,
        policies: list[str],
        display_name: str = "",
        ttl_seconds: int | None = None,
        method: str = "token",
        token: str | None = None,
    ) -> IssuedToken:
        if token is not None and len(token) < 16:
            raise InvalidInput("a chosen token must be at least 16 characters long")
        value = token or new_token_value()
        now = time.time()
        accessor = secrets.token_hex(12)
        expires_at = now + ttl_seconds if ttl_seconds else None
        row = {
            "token_hash": hash_token(value),
            "accessor": accessor,
            "display_name": display_name,
            "policies": json.dumps(sorted(set(policies))),
            "login_method": method,
            "created_at": now,
            "expires_at": expires_at,
            "max_expires_at": None,
            "ttl_seconds": ttl_seconds,
            "renewable": True,
            "revoked_at": None,
            "meta": "{}",
        }
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(insert(Token), [row])
        identity = Identity(
            accessor, display_name, tuple(sorted(set(policies))), method, expires_at
        )
        return IssuedToken(value, identity)

    def lookup(self, token: str) -> Identity | None:
        """The live identity behind ``token``, or None (unknown, expired or revoked)."""
        return self.lookup_hash(hash_token(token))

    def lookup_hash(self, token_hash: str) -> Identity | None:
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(
                select(Token).where(Token.token_hash == token_hash)
            ).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= time.time():
            return None
        return _identity(row)

    def revoke_accessor(self, accessor: str) -> None:
        with database_errors(self._engine), self._engine.begin() as connection:
            result = connection.execute(
                update(Token)
                .where(Token.accessor == accessor, Token.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        if result.rowcount == 0:
            raise NotFound(f"no live token has accessor {accessor!r}")

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
        accessor = secrets.token_hex(12)
        try:
            with database_errors(self._engine), self._engine.begin() as connection:
                connection.execute(
                    insert(InstanceState), [{"key": _BOOTSTRAP_KEY, "value": str(now)}]
                )
                connection.execute(
                    insert(Token),
                    [
                        {
                            "token_hash": hash_token(value),
                            "accessor": accessor,
                            "display_name": "admin (bootstrap)",
                            "policies": json.dumps([ADMIN_POLICY]),
                            "login_method": "bootstrap",
                            "created_at": now,
                            "expires_at": None,
                            "max_expires_at": None,
                            "ttl_seconds": None,
                            "renewable": False,
                            "revoked_at": None,
                            "meta": "{}",
                        }
                    ],
                )
        except IntegrityError:
            return None  # another replica won the race
        identity = Identity(accessor, "admin (bootstrap)", (ADMIN_POLICY,), "bootstrap", None)
        return IssuedToken(value, identity)
