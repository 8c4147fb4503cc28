"""secretsd: one interface around Vault/OpenBao.

``import secretsd`` stays light: it loads the reference parser and the error
classes only; the server, SDK and scanner load on use. ``secretsd.Client`` and
``secretsd.AsyncClient`` (the SDK, ``secretsd.client``) are imported on first
access, so httpx is not loaded until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secretsd.errors import (
    AuditUnavailable,
    CasMismatch,
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    InvalidPath,
    InvalidReference,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    RateLimited,
    SecretsdError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    VaultUnavailable,
)
from secretsd.ref import Reference, parse_reference

if TYPE_CHECKING:
    from secretsd.client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AuditUnavailable",
    "CasMismatch",
    "Client",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "Forbidden",
    "InvalidInput",
    "InvalidPath",
    "InvalidReference",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "RateLimited",
    "Reference",
    "SecretsdError",
    "Unauthenticated",
    "Unavailable",
    "ValidationFailed",
    "VaultUnavailable",
    "__version__",
    "parse_reference",
]

_LAZY = {"Client", "AsyncClient"}


def __getattr__(name: str) -> Any:
    """Load the SDK on first use of ``secretsd.Client`` / ``secretsd.AsyncClient``."""
    if name in _LAZY:
        from secretsd import client

        value = getattr(client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'secretsd' has no attribute {name!r}")
