"""The storage seam: what secretsd needs from a secrets store, in our own types.

Only the Vault backend imports hvac; everything above it (service, cache,
importers) sees these frozen dataclasses. The SDK implements the same
protocol remotely, so importers and ``secretsd run`` can target either.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BINARY_KEYS_DATA",
    "BINARY_KEYS_METADATA",
    "LEGACY_MARK_UNTIL",
    "Backend",
    "BackendHealth",
    "SecretMetadata",
    "SecretVersion",
    "ServedBackend",
    "VersionInfo",
    "decode_binary",
    "encode_values",
    "secret_to_json",
]

#: Reserved key inside each stored version listing that version's base64 keys.
#: The ':' is outside the key charset, so no user key can clash with it.
BINARY_KEYS_DATA = "secretsd:binary-keys"
#: The old per-secret mark (custom metadata); read only for versions without the above.
BINARY_KEYS_METADATA = "secretsd-binary-keys"
#: Custom-metadata key: the old mark covers versions up to this one only.
LEGACY_MARK_UNTIL = "secretsd-binary-keys-until"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version's lifecycle facts (no data)."""

    version: int
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False

    @property
    def deleted(self) -> bool:
        return bool(self.deletion_time) and not self.destroyed


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """A secret's history and custom metadata (provenance, binary keys...)."""

    path: str
    current_version: int
    oldest_version: int
    created_time: str
    updated_time: str
    max_versions: int
    cas_required: bool
    versions: tuple[VersionInfo, ...]
    custom_metadata: Mapping[str, str] = field(default_factory=dict)

    def version_info(self, version: int) -> VersionInfo | None:
        for info in self.versions:
            if info.version == version:
                return info
        return None

    @property
    def binary_keys(self) -> frozenset[str]:
        """The old per-secret mark only; each version carries its own (``SecretVersion``)."""
        raw = self.custom_metadata.get(BINARY_KEYS_METADATA, "")
        return frozenset(k for k in raw.split(",") if k)


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret: a flat map of string keys to string values.

    Values of ``binary_keys`` are base64 of the original bytes. The repr masks
    every value so a stray log line or traceback cannot leak one.
    """

    path: str
    version: int
    data: Mapping[str, str]
    created_time: str = ""
    custom_metadata: Mapping[str, str] = field(default_factory=dict)
    binary_keys: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.data))
        return f"SecretVersion(path={self.path!r}, version={self.version}, keys=[{keys}])"

    def value_bytes(self, key: str) -> bytes:
        """The exact bytes of one value (decoding base64 for binary keys)."""
        value = self.data[key]
        if key in self.binary_keys:
            return base64.b64decode(value)
        return value.encode("utf-8")


def secret_to_json(secret: SecretVersion) -> dict[str, Any]:
    """The API's JSON shape of one version (``GET /v1/secrets/{path}``, ``secretsd get --json``)."""
    return {
        "path": secret.path,
        "version": secret.version,
        "data": dict(secret.data),
        "binary_keys": sorted(secret.binary_keys),
        "metadata": {
            "created_time": secret.created_time,
            "custom_metadata": dict(secret.custom_metadata),
        },
    }


def encode_values(values: Mapping[str, str | bytes]) -> tuple[dict[str, str], frozenset[str]]:
    """Turn user values into storable strings, base64-encoding non-UTF-8 bytes."""
    data: dict[str, str] = {}
    binary: set[str] = set()
    for key, value in values.items():
        if isinstance(value, bytes):
            try:
                data[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                data[key] = base64.b64encode(value).decode("ascii")
                binary.add(key)
        else:
            data[key] = value
    return data, frozenset(binary)


def decode_binary(data: Mapping[str, str], binary_keys: frozenset[str]) -> dict[str, bytes]:
    """The exact bytes of every value."""
    return {
        key: base64.b64decode(value) if key in binary_keys else value.encode("utf-8")
        for key, value in data.items()
    }


class Backend(Protocol):
    """A versioned key/value secrets store (Vault KV v2 semantics)."""

    def read(self, path: str, version: int | None = None) -> SecretVersion:
        """Latest (or the given) live version; NotFound if absent, deleted or destroyed."""
        ...

    def write(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Store a new version and return its number; CasMismatch if ``cas`` is stale.

        ``custom_metadata`` is merged into the secret's custom metadata ('' removes
        a key) right after the version is written (provenance with the write).
        """
        ...

    def patch(
        self,
        path: str,
        changes: Mapping[str, str | None],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
    ) -> int:
        """Merge keys into the latest version (None removes a key); return the new version."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (folders end with '/')."""
        ...

    def metadata(self, path: str) -> SecretMetadata:
        """History and custom metadata; NotFound if the secret does not exist."""
        ...

    def update_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None = None,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        """Change custom metadata (merged) and settings of an existing secret."""
        ...

    def delete(self, path: str, versions: Sequence[int] | None = None) -> None:
        """Soft-delete the latest version, or the given ones (undelete restores them)."""
        ...

    def undelete(self, path: str, versions: Sequence[int]) -> None:
        """Restore soft-deleted versions."""
        ...

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        """Permanently remove the data of the given versions."""
        ...

    def delete_all(self, path: str) -> None:
        """Remove the secret entirely: every version and its metadata."""
        ...


class BackendHealth(Protocol):
    """What ``/readyz`` needs to know about the store."""

    @property
    def ready(self) -> bool: ...

    detail: str


class ServedBackend(Backend, Protocol):
    """What the service needs on top of :class:`Backend`: async hot reads and a lifecycle.

    The server is typed against this, never against a concrete store; tests
    can wrap a real backend to count its calls.
    """

    async def aread(self, path: str, version: int | None = None) -> SecretVersion:
        """:meth:`read` on the event loop (cache misses)."""
        ...

    async def ametadata(self, path: str) -> SecretMetadata:
        """:meth:`metadata` on the event loop (revalidation, watchers)."""
        ...

    @property
    def known_down(self) -> bool:
        """True while the store is known to be down (calls fail at once)."""
        ...

    def on_down(self, callback: Callable[[], None]) -> None:
        """Register ``callback``, called from any thread when the store is found down."""
        ...

    def mark_down(self, reason: str) -> None:
        """Someone else found the store down: fail fast until it answers again."""
        ...

    def login(self) -> None: ...

    def start_renewal(self) -> None: ...

    def health(self) -> BackendHealth: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
