"""The Vault / OpenBao KV v2 backend (over :mod:`secretsd.backends.transport`).

secretsd keeps everything under one mount (default ``secret``) and one path
prefix (default ``secretsd``), so it can share a Vault with other users and
its own least-privilege policy can name exactly that subtree.

Vault's answers are turned into our dataclasses and Vault's failures into our
error classes here, at the edge, so callers never see an hvac dict or
exception. A 403 from Vault is secretsd's own misconfiguration (its token
lacks a capability), not the caller's fault, so it maps to 503 with a hint.

Binary marks live in the version itself: the reserved data key
``secretsd:binary-keys`` (outside the key charset, so no user key can clash)
lists that version's base64-encoded keys, written in the same call as the
values. Versions written before per-version marks fall back to the old
per-secret custom-metadata mark, applied only to values that are base64 and,
once secretsd has written a newer version, only to the versions before it
(``secretsd-binary-keys-until``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from secretsd.backends.base import (
    BINARY_KEYS_DATA,
    BINARY_KEYS_METADATA,
    LEGACY_MARK_UNTIL,
    SecretMetadata,
    SecretVersion,
    VersionInfo,
)
from secretsd.backends.transport import VaultAuth, VaultHealth, VaultMissing, VaultTransport
from secretsd.bounds import check_key_count
from secretsd.errors import CasMismatch, InvalidInput, NotFound
from secretsd.ref import validate_path

__all__ = ["VaultAuth", "VaultBackend", "VaultHealth"]


class VaultBackend:
    """KV v2 under ``mount``/``prefix`` with our types and errors, over one transport."""

    def __init__(
        self,
        addr: str,
        auth: VaultAuth,
        *,
        mount: str = "secret",
        prefix: str = "secretsd",
        verify: bool | str = True,
        timeout: float = 5.0,
        on_call: Callable[[str, float], None] | None = None,
        probe_interval: float = 1.0,
        fallback_addrs: Sequence[str] = (),
    ) -> None:
        self.addr = addr
        self.mount = mount
        self.prefix = prefix.strip("/")
        self.transport = VaultTransport(
            addr,
            auth,
            verify=verify,
            timeout=timeout,
            on_call=on_call,
            probe_interval=probe_interval,
            fallback_addrs=fallback_addrs,
        )
        self._kv = self.transport.client.secrets.kv.v2

    # -- lifecycle (delegated to the transport) -------------------------

    def login(self) -> None:
        """Log in now (raises VaultUnavailable with the reason when it cannot)."""
        self.transport.login()

    def renew(self) -> None:
        self.transport.renew()

    def start_renewal(self) -> None:
        self.transport.start_renewal()

    @property
    def known_down(self) -> bool:
        """True while the circuit breaker is open: calls fail at once."""
        return self.transport.known_down

    def on_down(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) when this backend finds Vault down itself."""
        self.transport.on_down = callback

    def mark_down(self, reason: str) -> None:
        """Another worker found Vault down: fail fast here too until our probe says otherwise."""
        self.transport.mark_down(reason)

    def health(self) -> VaultHealth:
        return self.transport.health()

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- plumbing ---------------------------------------------------------

    def _vault_path(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _call(self, doing: str, path: str, method: str, fn: Callable[[], Any]) -> Any:
        return self.transport.call(doing, path, method, fn)

    # -- reads ------------------------------------------------------------

    def read(self, path: str, version: int | None = None) -> SecretVersion:
        validate_path(path)
        try:
            response = self._call(
                "reading",
                path,
                "GET",
                lambda: self._kv.read_secret_version(
                    path=self._vault_path(path),
                    version=version,
                    mount_point=self.mount,
                    raise_on_deleted_version=False,
                ),
            )
        except VaultMissing as missing:
            raise _read_not_found(path, version, missing.body) from None
        return _parse_secret(path, version, response)

    def metadata(self, path: str) -> SecretMetadata:
        validate_path(path)
        try:
            response = self._call(
                "reading metadata of",
                path,
                "GET",
                lambda: self._kv.read_secret_metadata(
                    path=self._vault_path(path), mount_point=self.mount
                ),
            )
        except VaultMissing:
            raise NotFound(f"secret {path!r} does not exist") from None
        return _parse_metadata(path, response)

    # -- async reads (the service's hot path) -----------------------------

    async def aread(self, path: str, version: int | None = None) -> SecretVersion:
        """:meth:`read` without a thread: the service's cache misses come here."""
        validate_path(path)
        params = {"version": str(version)} if version is not None else None
        api_path = f"{self.mount}/data/{self._vault_path(path)}"
        try:
            body = await self.transport.aget("reading", path, api_path, params)
        except VaultMissing as missing:
            raise _read_not_found(path, version, missing.body) from None
        return _parse_secret(path, version, body)

    async def ametadata(self, path: str) -> SecretMetadata:
        """:meth:`metadata` without a thread: revalidation and watchers come here."""
        validate_path(path)
        api_path = f"{self.mount}/metadata/{self._vault_path(path)}"
        try:
            body = await self.transport.aget("reading metadata of", path, api_path)
        except VaultMissing:
            raise NotFound(f"secret {path!r} does not exist") from None
        return _parse_metadata(path, body)

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.strip("/")
        validate_path(prefix, allow_empty=True)
        vault_prefix = self._vault_path(prefix) if prefix else self.prefix
        try:
            response = self._call(
                "listing",
                prefix,
                "GET",
                lambda: self._kv.list_secrets(path=vault_prefix, mount_point=self.mount),
            )
        except VaultMissing:
            return []
        return sorted(str(k) for k in response["data"].get("keys", []))

    # -- writes -----------------------------------------------------------

    def write(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """One Vault call: the binary mark travels inside the version's data (atomic).

        ``custom_metadata`` (merged, '' removes a key) costs one more call, and no
        metadata read: Vault's answer to the write carries the current custom
        metadata, so a write with provenance is two Vault calls, not three.
        """
        validate_path(path)
        check_key_count(path, len(data))
        if BINARY_KEYS_DATA in data:
            raise InvalidInput(f"{BINARY_KEYS_DATA!r} is reserved for secretsd; rename that key")
        stored = dict(data)
        marked = sorted(binary_keys & frozenset(data))
        if marked:
            stored[BINARY_KEYS_DATA] = ",".join(marked)
        response = self._call(
            "writing",
            path,
            "POST",
            lambda: self._kv.create_or_update_secret(
                path=self._vault_path(path), secret=stored, cas=cas, mount_point=self.mount
            ),
        )
        version = int(response["data"]["version"])
        existing = dict(response["data"].get("custom_metadata") or {})
        custom = _merged(existing, custom_metadata or {})
        if BINARY_KEYS_METADATA in custom and LEGACY_MARK_UNTIL not in custom:
            # First write since per-version marks: the old per-secret mark now covers
            # only the versions before this one (this one carries its own mark).
            custom[LEGACY_MARK_UNTIL] = str(version - 1)
        if custom != existing:
            self._write_custom_metadata(path, custom)
        return version

    def patch(
        self,
        path: str,
        changes: Mapping[str, str | None],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
    ) -> int:
        """Read-modify-write with check-and-set, retried when another writer raced us."""
        for _ in range(5):
            current = self.read(path)
            if cas is not None and cas != current.version:
                raise CasMismatch(
                    f"check-and-set failed for {path!r}: expected version {cas}, "
                    f"current is {current.version}; read it again and retry"
                )
            merged = dict(current.data)
            binary = set(current.binary_keys)
            for key, value in changes.items():
                binary.discard(key)
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            binary |= binary_keys
            try:
                return self.write(path, merged, cas=current.version, binary_keys=frozenset(binary))
            except CasMismatch:
                if cas is not None:
                    raise
        raise CasMismatch(f"patching {path!r} lost the race to other writers 5 times; retry")

    def update_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None = None,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        validate_path(path)
        existing = self.metadata(path)
        merged = _merged(existing.custom_metadata, custom_metadata or {})
        self._write_custom_metadata(
            path, merged, max_versions=max_versions, cas_required=cas_required
        )

    def _write_custom_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str],
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        params: dict[str, Any] = {"custom_metadata": dict(custom_metadata)}
        if max_versions is not None:
            params["max_versions"] = max_versions
        if cas_required is not None:
            params["cas_required"] = cas_required
        self._call(
            "updating metadata of",
            path,
            "POST",
            lambda: self._kv.update_metadata(
                path=self._vault_path(path), mount_point=self.mount, **params
            ),
        )

    def delete(self, path: str, versions: Sequence[int] | None = None) -> None:
        validate_path(path)
        meta = self.metadata(path)
        if versions:
            self._check_versions(meta, versions)
            self._call(
                "deleting versions of",
                path,
                "POST",
                lambda: self._kv.delete_secret_versions(
                    path=self._vault_path(path), versions=list(versions), mount_point=self.mount
                ),
            )
        else:
            self._call(
                "deleting",
                path,
                "DELETE",
                lambda: self._kv.delete_latest_version_of_secret(
                    path=self._vault_path(path), mount_point=self.mount
                ),
            )

    def undelete(self, path: str, versions: Sequence[int]) -> None:
        validate_path(path)
        self._check_versions(self.metadata(path), versions)
        self._call(
            "undeleting",
            path,
            "POST",
            lambda: self._kv.undelete_secret_versions(
                path=self._vault_path(path), versions=list(versions), mount_point=self.mount
            ),
        )

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        validate_path(path)
        self._check_versions(self.metadata(path), versions)
        self._call(
            "destroying",
            path,
            "POST",
            lambda: self._kv.destroy_secret_versions(
                path=self._vault_path(path), versions=list(versions), mount_point=self.mount
            ),
        )

    def delete_all(self, path: str) -> None:
        validate_path(path)
        self.metadata(path)  # NotFound when absent
        self._call(
            "deleting all versions of",
            path,
            "DELETE",
            lambda: self._kv.delete_metadata_and_all_versions(
                path=self._vault_path(path), mount_point=self.mount
            ),
        )

    @staticmethod
    def _check_versions(meta: SecretMetadata, versions: Sequence[int]) -> None:
        if not versions:
            raise InvalidInput(f"no versions given for {meta.path!r}; name at least one")
        known = {info.version for info in meta.versions}
        missing = sorted(set(versions) - known)
        if missing:
            shown = ", ".join(str(v) for v in missing)
            raise NotFound(
                f"secret {meta.path!r} has no version {shown}; it keeps versions "
                f"{meta.oldest_version}..{meta.current_version}"
            )


def _read_not_found(path: str, version: int | None, body: Any) -> NotFound:
    """A destroyed version answers 404 with its metadata; an absent one without."""
    what = f"secret {path!r}" + (f" version {version}" if version else "")
    meta = (((body or {}).get("data") or {}).get("metadata")) or {}
    if meta.get("destroyed"):
        return NotFound(f"{what} is destroyed; read another version")
    if meta.get("deletion_time"):
        return NotFound(f"{what} is deleted; undelete it or write a new version")
    return NotFound(f"{what} does not exist")


def _parse_secret(path: str, version: int | None, response: Any) -> SecretVersion:
    body = response["data"]
    meta = body.get("metadata") or {}
    if body.get("data") is None:
        raise _read_not_found(path, version, response)
    custom = dict(meta.get("custom_metadata") or {})
    data = {str(k): _as_str(v) for k, v in body["data"].items()}
    mark = data.pop(BINARY_KEYS_DATA, None)
    if mark is not None:
        binary = frozenset(k for k in mark.split(",") if k in data)
    else:  # written before per-version marks: the old per-secret mark, where it can apply
        number = int(meta["version"])
        until = custom.get(LEGACY_MARK_UNTIL, "")
        legacy = custom.get(BINARY_KEYS_METADATA, "").split(",")
        if until.isdigit() and number > int(until):
            legacy = []
        binary = frozenset(k for k in legacy if k in data and _is_base64(data[k]))
    return SecretVersion(
        path=path,
        version=int(meta["version"]),
        data=data,
        created_time=str(meta.get("created_time", "")),
        custom_metadata=custom,
        binary_keys=binary,
    )


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _parse_metadata(path: str, response: Any) -> SecretMetadata:
    body = response["data"]
    versions = tuple(
        VersionInfo(
            version=int(number),
            created_time=str(info.get("created_time", "")),
            deletion_time=str(info.get("deletion_time", "")),
            destroyed=bool(info.get("destroyed", False)),
        )
        for number, info in sorted(body.get("versions", {}).items(), key=lambda i: int(i[0]))
    )
    return SecretMetadata(
        path=path,
        current_version=int(body.get("current_version", 0)),
        oldest_version=int(body.get("oldest_version", 0)),
        created_time=str(body.get("created_time", "")),
        updated_time=str(body.get("updated_time", "")),
        max_versions=int(body.get("max_versions", 0)),
        cas_required=bool(body.get("cas_required", False)),
        versions=versions,
        custom_metadata=dict(body.get("custom_metadata") or {}),
    )


def _as_str(value: object) -> str:
    """KV v2 can hold any JSON; secretsd's secrets are string maps, so normalise."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _merged(existing: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str]:
    """Custom metadata after ``changes`` ('' removes a key): Vault's API has no merge."""
    merged = dict(existing)
    for key, value in changes.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
