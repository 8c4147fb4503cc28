"""Result types of the SDK beyond the backend's own (``SecretVersion``, ``SecretMetadata``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

from secretsd.errors import SecretsdError

__all__ = ["Resolved", "SecretWrite", "TokenInfo", "Written"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """One answer of a batch resolve: a value (``#key`` references) or a whole map.

    ``error`` is set instead when this reference failed and the caller asked
    for errors to be returned rather than raised. The repr never shows a value.
    """

    ref: str
    path: str = ""
    version: int = 0
    value: str | None = None
    data: Mapping[str, str] | None = None
    binary: bool = False
    binary_keys: frozenset[str] = frozenset()
    stale: bool = False
    error: SecretsdError | None = None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Resolved(ref={self.ref!r}, error={type(self.error).__name__})"
        shape = "value=<hidden>" if self.value is not None else "data=<hidden>"
        return f"Resolved(ref={self.ref!r}, version={self.version}, {shape})"

    @property
    def ok(self) -> bool:
        return self.error is None

    def value_bytes(self) -> bytes:
        """The exact bytes of a ``#key`` reference's value (base64 decoded if binary)."""
        if self.error is not None:
            raise self.error
        if self.value is None:
            raise TypeError(f"{self.ref} names a whole secret; use .data or .data_bytes()")
        return base64.b64decode(self.value) if self.binary else self.value.encode("utf-8")

    def data_bytes(self) -> dict[str, bytes]:
        """The exact bytes of every value of a whole-secret reference."""
        if self.error is not None:
            raise self.error
        if self.data is None:
            raise TypeError(f"{self.ref} names one key; use .value or .value_bytes()")
        return {
            key: base64.b64decode(value) if key in self.binary_keys else value.encode("utf-8")
            for key, value in self.data.items()
        }


@dataclass(frozen=True, slots=True)
class SecretWrite:
    """One write of :meth:`Client.put_many`: what :meth:`Client.put` takes, as data.

    ``cas``: write only if the current version is this (0: create only).
    ``custom_metadata`` is merged into the secret's custom metadata ('' removes a
    key) in the same request. The repr never shows a value.
    """

    path: str
    data: Mapping[str, str | bytes]
    cas: int | None = None
    custom_metadata: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        return f"SecretWrite(path={self.path!r}, keys={sorted(self.data)!r}, cas={self.cas!r})"


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of one write of :meth:`Client.put_many`: its new version, or ``error``."""

    path: str
    version: int = 0
    error: SecretsdError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the service says about a token (``token`` is set only right after a login)."""

    accessor: str
    policies: tuple[str, ...] = ()
    expires_at: str | None = None
    ttl: int | None = None
    renewable: bool = False
    display_name: str = ""
    method: str = ""
    token: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"TokenInfo(accessor={self.accessor!r}, policies={list(self.policies)!r}, "
            f"expires_at={self.expires_at!r}, renewable={self.renewable}"
            f"{', token=<hidden>' if self.token else ''})"
        )
