"""What travels: references going out, JSON answers coming back as our own types.

Pure functions shared by the core and the CLI: one place that turns a
``secretsd://`` reference or a path into what a call needs (through the one
parser, ``secretsd.ref``), and the service's JSON into ``SecretVersion``,
``SecretMetadata`` and ``Resolved``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from secretsd.backends.base import SecretMetadata, SecretVersion, VersionInfo
from secretsd.client._effects import HttpResponse
from secretsd.client._types import Resolved, Written
from secretsd.errors import InvalidReference, NotFound, SecretsdError, error_class_for_code
from secretsd.ref import Reference, is_reference, parse_reference, secret_path, validate_path

__all__ = [
    "as_path",
    "as_reference",
    "json_body",
    "keyed",
    "metadata_from_json",
    "path_of",
    "pick_value",
    "resolved_from_json",
    "resolved_from_secret",
    "secret_from_json",
    "written_from_json",
]


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Reference:
    return parse_reference(text)


def as_reference(ref: str | Reference) -> Reference:
    """A Reference from a ``secretsd://`` string (parsed once, then memoised)."""
    if isinstance(ref, Reference):
        return ref
    if not isinstance(ref, str):
        return parse_reference(ref)  # raises the parser's own error
    return _parse_cached(ref)


def as_path(path_or_ref: str | Reference) -> str:
    """A secret path from a bare path or a key-less reference (``secretsd.ref.secret_path``)."""
    return secret_path(path_or_ref)


def keyed(ref: str | Reference) -> _Keyed:
    """A reference that must name one key (``#key``)."""
    parsed = as_reference(ref)
    if parsed.key is None:
        raise InvalidReference(
            f"{parsed} names a whole secret, not one value; add '#<key>' "
            "or read the whole map with get_map()"
        )
    return _Keyed(parsed.path, parsed.key, parsed.version)


@dataclass(frozen=True, slots=True)
class _Keyed:
    path: str
    key: str
    version: int | None


def path_of(ref: str | Reference) -> str:
    """The secret path of a bare path or of any reference (key and version ignored)."""
    if isinstance(ref, Reference) or is_reference(ref):
        return as_reference(ref).path
    return validate_path(ref)


def pick_value(secret: SecretVersion, key: str) -> str:
    try:
        return secret.data[key]
    except KeyError:
        keys = ", ".join(sorted(secret.data)) or "none"
        raise NotFound(
            f"secret {secret.path!r} version {secret.version} has no key {key!r} (keys: {keys})"
        ) from None


def json_body(response: HttpResponse) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise SecretsdError(
            f"secretsd answered HTTP {response.status} with a body that is not JSON; "
            "is SECRETSD_ADDR the address of a secretsd service?"
        ) from None


def secret_from_json(body: Any) -> SecretVersion:
    try:
        meta = body.get("metadata") or {}
        return SecretVersion(
            path=str(body["path"]),
            version=int(body["version"]),
            data={str(k): str(v) for k, v in body["data"].items()},
            created_time=str(meta.get("created_time") or ""),
            custom_metadata={
                str(k): str(v) for k, v in (meta.get("custom_metadata") or {}).items()
            },
            binary_keys=frozenset(str(k) for k in body.get("binary_keys") or ()),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SecretsdError("secretsd answered with an unexpected secret shape") from None


def metadata_from_json(body: Any) -> SecretMetadata:
    try:
        return SecretMetadata(
            path=str(body["path"]),
            current_version=int(body["current_version"]),
            oldest_version=int(body["oldest_version"]),
            created_time=str(body["created_time"]),
            updated_time=str(body["updated_time"]),
            max_versions=int(body["max_versions"]),
            cas_required=bool(body["cas_required"]),
            versions=tuple(
                VersionInfo(
                    version=int(item["version"]),
                    created_time=str(item["created_time"]),
                    deletion_time=str(item.get("deletion_time") or ""),
                    destroyed=bool(item.get("destroyed", False)),
                )
                for item in body["versions"]
            ),
            custom_metadata={str(k): str(v) for k, v in (body["custom_metadata"] or {}).items()},
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SecretsdError("secretsd answered with an unexpected metadata shape") from None


def resolved_from_json(item: Any) -> Resolved:
    ref = str(item.get("ref", ""))
    if "error" in item:
        error = item["error"] or {}
        cls = error_class_for_code(str(error.get("code", "")))
        return Resolved(ref, error=cls(str(error.get("message", "resolving failed"))))
    stale = bool(item.get("stale", False))
    if "value" in item:
        return Resolved(
            ref,
            str(item["path"]),
            int(item["version"]),
            value=str(item["value"]),
            binary=bool(item.get("binary", False)),
            stale=stale,
        )
    return Resolved(
        ref,
        str(item["path"]),
        int(item["version"]),
        data={str(k): str(v) for k, v in item["data"].items()},
        binary_keys=frozenset(item.get("binary_keys") or ()),
        stale=stale,
    )


def resolved_from_secret(text: str, ref: Reference, secret: SecretVersion) -> Resolved:
    if ref.key is None:
        return Resolved(
            text, ref.path, secret.version, data=secret.data, binary_keys=secret.binary_keys
        )
    value = pick_value(secret, ref.key)
    return Resolved(
        text, ref.path, secret.version, value=value, binary=ref.key in secret.binary_keys
    )


def written_from_json(item: Any) -> Written:
    """One result of ``POST /v1/secrets:batch``."""
    path = str(item.get("path", ""))
    if "error" in item:
        error = item["error"] or {}
        cls = error_class_for_code(str(error.get("code", "")))
        return Written(path, error=cls(str(error.get("message", "writing failed"))))
    return Written(path, int(item["version"]))
