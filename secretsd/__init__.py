"""secretsd: one interface around Vault/OpenBao.

``import secretsd`` stays light: it loads the reference parser and the error
classes only; the server, SDK and scanner load on use.
"""

from __future__ import annotations

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
    PayloadTooLarge,
    SecretsdError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    VaultUnavailable,
)
from secretsd.ref import Reference, parse_reference

__version__ = "0.1.0"

__all__ = [
    "AuditUnavailable",
    "CasMismatch",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "Forbidden",
    "InvalidInput",
    "InvalidPath",
    "InvalidReference",
    "NotFound",
    "PayloadTooLarge",
    "Reference",
    "SecretsdError",
    "Unauthenticated",
    "Unavailable",
    "ValidationFailed",
    "VaultUnavailable",
    "__version__",
    "parse_reference",
]
