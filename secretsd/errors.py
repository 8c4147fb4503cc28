"""One error hierarchy for the service, the SDK and the CLI.

Every class carries the three things its boundary needs: the HTTP status the
service answers with, the stable machine-readable ``code`` placed in the JSON
error body (and mapped back to the same class by the SDK), and the exit code
the CLI returns. Messages say what went wrong, where, and how to fix it; they
never carry a secret value.

    SecretsdError                       500  internal            exit 1
    ├── InvalidInput                    400  invalid_input       exit 2
    │   ├── InvalidReference            400  invalid_reference   exit 2
    │   ├── InvalidPath                 400  invalid_path        exit 2
    │   ├── ConfigError                 400  invalid_config      exit 2
    │   └── MethodNotAllowed            405  method_not_allowed  exit 2
    ├── ValidationFailed                422  validation_failed   exit 2
    ├── PayloadTooLarge                 413  payload_too_large   exit 2
    ├── Unauthenticated                 401  unauthenticated     exit 4
    ├── Forbidden                       403  forbidden           exit 4
    ├── NotFound                        404  not_found           exit 3
    ├── Conflict                        409  conflict            exit 5
    │   └── CasMismatch                 409  cas_mismatch        exit 5
    └── Unavailable                     503  unavailable         exit 6
        ├── VaultUnavailable            503  vault_unavailable   exit 6
        ├── DatabaseUnavailable         503  database_unavailable exit 6
        ├── AuditUnavailable            503  audit_unavailable   exit 6
        └── OutcomeUnknown              504  outcome_unknown     exit 7

``OutcomeUnknown`` is the one ``Unavailable`` that must not be retried blindly:
the write may already have landed (its own status, code and exit code say so;
the SDK never retries it). Check the current version, then retry with cas.

The status-to-class mapping is derived from this tree once
(:func:`error_class_for_status`), and every boundary uses it: the service's
handler for framework errors, the SDK for answers without our JSON body, and
through the SDK the CLI, the scanner and the Ansible lookup. (A gateway's 504
without our body counts as Unavailable; our own 504 carries ``outcome_unknown``.)
"""

from __future__ import annotations

from typing import ClassVar

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
    "MethodNotAllowed",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "SecretsdError",
    "Unauthenticated",
    "Unavailable",
    "ValidationFailed",
    "VaultUnavailable",
    "error_class_for_code",
    "error_class_for_status",
]


class SecretsdError(Exception):
    """Base of every error secretsd raises on purpose."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The one JSON error shape: ``{"error": {"code", "message"}}``."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(SecretsdError):
    """The caller sent something malformed; nothing was changed."""

    http_status = 400
    code = "invalid_input"
    exit_code = 2


class InvalidReference(InvalidInput):
    """A ``secretsd://`` reference that does not follow the syntax."""

    code = "invalid_reference"


class InvalidPath(InvalidInput):
    """A secret path that does not follow the path syntax."""

    code = "invalid_path"


class ConfigError(InvalidInput):
    """Settings that cannot work (unknown file, contradictory options...)."""

    code = "invalid_config"


class MethodNotAllowed(InvalidInput):
    """An HTTP method the endpoint does not offer (a client or script bug)."""

    http_status = 405
    code = "method_not_allowed"


class ValidationFailed(SecretsdError):
    """A well-formed request whose content breaks a rule of the API."""

    http_status = 422
    code = "validation_failed"
    exit_code = 2


class PayloadTooLarge(SecretsdError):
    """A request body over the configured limit."""

    http_status = 413
    code = "payload_too_large"
    exit_code = 2


class Unauthenticated(SecretsdError):
    """No token, or a token that is unknown, expired or revoked."""

    http_status = 401
    code = "unauthenticated"
    exit_code = 4


class Forbidden(SecretsdError):
    """An authenticated caller whose policies do not allow the action."""

    http_status = 403
    code = "forbidden"
    exit_code = 4


class NotFound(SecretsdError):
    """No secret (or version, or key) at the given place."""

    http_status = 404
    code = "not_found"
    exit_code = 3


class Conflict(SecretsdError):
    """The request conflicts with the current state."""

    http_status = 409
    code = "conflict"
    exit_code = 5


class CasMismatch(Conflict):
    """A check-and-set write whose expected version is not the current one."""

    code = "cas_mismatch"


class Unavailable(SecretsdError):
    """A dependency is down; the request may succeed later."""

    http_status = 503
    code = "unavailable"
    exit_code = 6


class VaultUnavailable(Unavailable):
    """Vault/OpenBao is unreachable, sealed, or refused secretsd's own token."""

    code = "vault_unavailable"


class DatabaseUnavailable(Unavailable):
    """secretsd's own database cannot be reached."""

    code = "database_unavailable"


class AuditUnavailable(Unavailable):
    """The audit log could not be written, so the request was refused (fail closed)."""

    code = "audit_unavailable"


class OutcomeUnknown(Unavailable):
    """A write sent to Vault whose answer never came: it may or may not have been applied.

    Read the current version, then retry with check-and-set so it cannot apply twice.
    """

    http_status = 504
    code = "outcome_unknown"
    exit_code = 7


def _all_subclasses(cls: type[SecretsdError]) -> list[type[SecretsdError]]:
    found: list[type[SecretsdError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[str, type[SecretsdError]] = {}
_BY_STATUS: dict[int, type[SecretsdError]] = {}
for _cls in _all_subclasses(SecretsdError):  # parents before children
    _BY_CODE.setdefault(_cls.code, _cls)
    _BY_STATUS.setdefault(_cls.http_status, _cls)
del _cls

#: A gateway's "cannot reach the service" answers mean what our 503 means.
_GATEWAY_STATUSES = frozenset({502, 504})


def error_class_for_code(code: str) -> type[SecretsdError]:
    """Map a JSON error code back to its class (used by the SDK)."""
    return _BY_CODE.get(code, SecretsdError)


def error_class_for_status(status: int) -> type[SecretsdError]:
    """The most general class answered with ``status`` (400 -> InvalidInput, 409 -> Conflict,
    503 -> Unavailable); SecretsdError for a status the tree does not use.

    For answers without our JSON error body (a proxy, a framework error): a
    body's ``code`` is more precise and wins where there is one. A gateway's
    502 or 504 (a proxy that cannot reach secretsd) counts as Unavailable.
    """
    if status in _GATEWAY_STATUSES:
        return Unavailable
    return _BY_STATUS.get(status, SecretsdError)
