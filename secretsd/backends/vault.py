"""The Vault / OpenBao KV v2 backend: the only module that imports hvac.

secretsd keeps everything under one mount (default ``secret``) and one path
prefix (default ``secretsd``), so it can share a Vault with other users and
its own least-privilege policy can name exactly that subtree.

Vault's answers are turned into our dataclasses and Vault's failures into our
error classes here, at the edge, so callers never see an hvac dict or
exception. A 403 from Vault is secretsd's own misconfiguration (its token
lacks a capability), not the caller's fault, so it maps to 503 with a hint.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.exceptions as hvac_errors
import orjson
import requests

from secretsd.backends.base import (
    BINARY_KEYS_METADATA,
    SecretMetadata,
    SecretVersion,
    VersionInfo,
)
from secretsd.errors import (
    CasMismatch,
    ConfigError,
    InvalidInput,
    NotFound,
    SecretsdError,
    VaultUnavailable,
)
from secretsd.ref import validate_path

__all__ = ["VaultAuth", "VaultBackend", "VaultHealth"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class VaultAuth:
    """How secretsd logs in to Vault: a static token, or AppRole credentials."""

    def __init__(
        self,
        *,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
    ) -> None:
        if token is None and not (role_id and secret_id):
            raise ConfigError(
                "no Vault credentials: set SECRETSD_VAULT_TOKEN (or _TOKEN_FILE), or "
                "SECRETSD_VAULT_ROLE_ID with SECRETSD_VAULT_SECRET_ID (or _SECRET_ID_FILE)"
            )
        self._token = token
        self.role_id = role_id
        self._secret_id = secret_id
        self.approle_mount = approle_mount

    @property
    def uses_approle(self) -> bool:
        return self._token is None

    def login(self, client: hvac.Client) -> float:
        """Log ``client`` in; return the token's TTL in seconds (0 = never expires)."""
        if self._token is not None:
            client.token = self._token
            info = client.auth.token.lookup_self()["data"]
            return float(info.get("ttl") or 0)
        response = client.auth.approle.login(
            role_id=self.role_id, secret_id=self._secret_id, mount_point=self.approle_mount
        )
        client.token = response["auth"]["client_token"]
        return float(response["auth"].get("lease_duration") or 0)

    @classmethod
    def from_settings_values(
        cls,
        *,
        token: str | None,
        token_file: Path | None,
        role_id: str | None,
        secret_id: str | None,
        secret_id_file: Path | None,
        approle_mount: str,
    ) -> VaultAuth:
        if token is None and token_file is not None:
            token = _read_credential_file(token_file, "SECRETSD_VAULT_TOKEN_FILE")
        if secret_id is None and secret_id_file is not None:
            secret_id = _read_credential_file(secret_id_file, "SECRETSD_VAULT_SECRET_ID_FILE")
        return cls(token=token, role_id=role_id, secret_id=secret_id, approle_mount=approle_mount)


def _read_credential_file(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(
            f"cannot read {setting} {str(path)!r}: {error.strerror}; fix the path or permissions"
        ) from None


class _NeverSent(Exception):
    """A Vault call whose connection was never established (safe to send elsewhere)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _never_connected(error: Exception) -> bool:
    """True when requests could not even connect (refused, unroutable): nothing was sent."""
    from urllib3.exceptions import NewConnectionError

    if not isinstance(error, requests.exceptions.ConnectionError) or isinstance(
        error, requests.exceptions.ReadTimeout
    ):
        return False
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


class VaultHealth:
    """What ``/readyz`` needs to know about Vault."""

    def __init__(self, reachable: bool, initialized: bool, sealed: bool, detail: str) -> None:
        self.reachable = reachable
        self.initialized = initialized
        self.sealed = sealed
        self.detail = detail

    @property
    def ready(self) -> bool:
        return self.reachable and self.initialized and not self.sealed


class VaultBackend:
    """KV v2 under ``mount``/``prefix`` with our types and errors."""

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
        fallback_addrs: Sequence[str] = (),
    ) -> None:
        self.addr = addr
        self._addrs = [addr, *(a for a in fallback_addrs if a != addr)]
        self.mount = mount
        self.prefix = prefix.strip("/")
        self._auth = auth
        self._client = hvac.Client(url=addr, verify=verify, timeout=timeout)
        self._verify = verify
        self._timeout = timeout
        self._session: Any = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._login_lock = threading.Lock()
        self._on_call = on_call
        self._logged_in = False
        self._token_expires_at = 0.0
        self._token_ttl = 0.0
        self._stop_renewal = threading.Event()
        self._renewal_thread: threading.Thread | None = None

    # -- authentication -------------------------------------------------

    def login(self) -> None:
        """Log in now (raises VaultUnavailable with the reason when it cannot)."""
        with self._login_lock:
            self._login_locked()

    def _login_locked(self) -> None:
        try:
            ttl = self._auth.login(self._client)
        except (hvac_errors.Forbidden, hvac_errors.Unauthorized, hvac_errors.InvalidRequest):
            how = "AppRole role_id/secret_id" if self._auth.uses_approle else "token"
            raise VaultUnavailable(
                f"Vault at {self.addr} refused secretsd's {how}; check SECRETSD_VAULT_* "
                "credentials and that they are not expired or revoked"
            ) from None
        except SecretsdError:
            raise
        except Exception as error:
            raise self._unavailable(error, "logging in") from None
        self._token_ttl = ttl
        self._token_expires_at = time.monotonic() + ttl if ttl else 0.0
        self._logged_in = True

    def start_renewal(self) -> None:
        """Keep secretsd's own token alive in a background thread."""
        if self._renewal_thread is not None:
            return
        self._renewal_thread = threading.Thread(
            target=self._renew_loop, name="secretsd-vault-renew", daemon=True
        )
        self._renewal_thread.start()

    def close(self) -> None:
        self._stop_renewal.set()
        self._client.adapter.close()

    def _renew_loop(self) -> None:
        while not self._stop_renewal.is_set():
            ttl = self._token_ttl
            # Renew at two thirds of the TTL; check hourly when the token never expires.
            wait = max(ttl * 2 / 3, 1.0) if ttl else 3600.0
            if self._stop_renewal.wait(wait):
                return
            try:
                self.renew()
            except SecretsdError as error:
                log.warning("renewing secretsd's Vault token failed: %s", error.message)

    def renew(self) -> None:
        """Renew secretsd's token; log in again when renewal is refused."""
        with self._login_lock:
            try:
                response = self._client.auth.token.renew_self()
                ttl = float(response["auth"].get("lease_duration") or 0)
                self._token_ttl = ttl
                self._token_expires_at = time.monotonic() + ttl if ttl else 0.0
            except (hvac_errors.Forbidden, hvac_errors.InvalidRequest):
                self._login_locked()
            except Exception as error:
                raise self._unavailable(error, "renewing secretsd's token") from None

    # -- plumbing ---------------------------------------------------------

    def _vault_path(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _unavailable(self, error: Exception, doing: str) -> VaultUnavailable:
        if isinstance(error, requests.exceptions.Timeout):
            reason = "timed out"
        elif isinstance(error, requests.exceptions.ConnectionError):
            reason = "is unreachable"
        elif isinstance(error, hvac_errors.VaultDown):
            reason = "is sealed or down"
        elif isinstance(error, hvac_errors.VaultNotInitialized):
            reason = "is not initialised"
        else:
            reason = f"answered with an error ({type(error).__name__})"
        return VaultUnavailable(f"Vault at {self.addr} {reason} while {doing}; retry later")

    def _fail_over(self) -> bool:
        """Move to the next configured node (``vault_fallback_addrs``); False if there is none.

        Only for a connection that was never established: the request did not reach
        Vault, so sending it to another node of the cluster cannot apply it twice.
        """
        if len(self._addrs) < 2:
            return False
        position = self._addrs.index(self.addr) if self.addr in self._addrs else -1
        self.addr = self._addrs[(position + 1) % len(self._addrs)]
        self._client.url = self.addr
        log.warning("Vault node unreachable; failing over to %s", self.addr)
        return True

    def _call(self, doing: str, path: str, fn: Callable[[], T]) -> T:
        """Run one Vault call with login, one re-login on a stale token, and error mapping."""
        for _ in range(len(self._addrs) - 1):
            try:
                return self._call_once(doing, path, fn)
            except _NeverSent:
                if not self._fail_over():
                    break
        try:
            return self._call_once(doing, path, fn)
        except _NeverSent as never_sent:
            raise self._unavailable(never_sent.error, f"{doing} {path!r}") from None

    def _login_or_never_sent(self) -> None:
        """Log in; a node that refuses connections is _NeverSent (try the next one)."""
        try:
            self.login()
        except VaultUnavailable:
            if len(self._addrs) > 1 and not self._reachable():
                raise _NeverSent(requests.exceptions.ConnectionError()) from None
            raise

    def _call_once(self, doing: str, path: str, fn: Callable[[], T]) -> T:
        if not self._logged_in:
            self._login_or_never_sent()
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                try:
                    return fn()
                except hvac_errors.Forbidden as error:
                    # A revoked or expired own token: log in again, once.
                    if attempt == 1 and self._token_invalid(error):
                        self.login()
                        continue
                    raise VaultUnavailable(
                        f"Vault denied secretsd's own token {doing} {path!r} (permission "
                        f"denied under {self.mount}/{self.prefix}); grant secretsd's Vault "
                        "policy create/read/update/patch/delete/list on that subtree"
                    ) from None
            raise AssertionError("unreachable")  # pragma: no cover
        except hvac_errors.InvalidRequest as error:
            raise self._invalid_request(error, path) from None
        except (hvac_errors.InvalidPath, SecretsdError):
            raise
        except Exception as error:
            if _never_connected(error):
                raise _NeverSent(error) from None
            raise self._unavailable(error, f"{doing} {path!r}") from None
        finally:
            if self._on_call is not None:
                self._on_call(doing, time.perf_counter() - started)

    def _reachable(self) -> bool:
        """Whether the current node accepts a TCP connection at all."""
        import socket

        parts = urlsplit(self.addr)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=1):
                return True
        except OSError:
            return False

    @staticmethod
    def _token_invalid(error: hvac_errors.VaultError) -> bool:
        text = " ".join(error.errors or []) if error.errors else str(error)
        return "invalid token" in text or ("token" in text and "expired" in text)

    @staticmethod
    def _invalid_request(error: hvac_errors.InvalidRequest, path: str) -> SecretsdError:
        text = " ".join(error.errors or []) if error.errors else str(error)
        if "check-and-set" in text:
            return CasMismatch(
                f"check-and-set failed for {path!r}: the given cas version is not the current "
                "one; read the secret again and retry with its version (cas=0 means 'create only')"
            )
        return InvalidInput(f"Vault rejected the request for {path!r}: {text}")

    @contextmanager
    def _not_found(self, message: str) -> Iterator[None]:
        try:
            yield
        except hvac_errors.InvalidPath:
            raise NotFound(message) from None

    # -- reads ------------------------------------------------------------

    def read(self, path: str, version: int | None = None) -> SecretVersion:
        validate_path(path)
        try:
            response = self._call(
                "reading",
                path,
                lambda: self._client.secrets.kv.v2.read_secret_version(
                    path=self._vault_path(path),
                    version=version,
                    mount_point=self.mount,
                    raise_on_deleted_version=False,
                ),
            )
        except hvac_errors.InvalidPath as error:
            raise _read_not_found(path, version, error.json) from None
        return _parse_secret(path, version, response)

    def metadata(self, path: str) -> SecretMetadata:
        validate_path(path)
        with self._not_found(f"secret {path!r} does not exist"):
            response = self._call(
                "reading metadata of",
                path,
                lambda: self._client.secrets.kv.v2.read_secret_metadata(
                    path=self._vault_path(path), mount_point=self.mount
                ),
            )
        return _parse_metadata(path, response)

    # -- async reads (the service's hot path) -----------------------------

    async def aread(self, path: str, version: int | None = None) -> SecretVersion:
        """:meth:`read` without a thread: the service's cache misses come here."""
        validate_path(path)
        params = {"version": str(version)} if version is not None else None
        status, body = await self._aget("reading", path, f"data/{self._vault_path(path)}", params)
        if status == 404:
            raise _read_not_found(path, version, body)
        return _parse_secret(path, version, body)

    async def ametadata(self, path: str) -> SecretMetadata:
        """:meth:`metadata` without a thread: revalidation and watchers come here."""
        validate_path(path)
        status, body = await self._aget(
            "reading metadata of", path, f"metadata/{self._vault_path(path)}", None
        )
        if status == 404:
            raise NotFound(f"secret {path!r} does not exist")
        return _parse_metadata(path, body)

    async def _aget(
        self, doing: str, path: str, api_path: str, params: dict[str, str] | None
    ) -> tuple[int, Any]:
        """One GET on the KV mount with aiohttp (hvac is synchronous: ~4x the CPU per call).

        Same contract as :meth:`_call`: one re-login on a stale token, and
        every failure mapped to our errors.
        """
        import aiohttp

        for _ in range(len(self._addrs) - 1):
            try:
                return await self._aget_once(doing, path, api_path, params)
            except (aiohttp.ClientConnectorError, _NeverSent):
                if not self._fail_over():
                    break
        try:
            return await self._aget_once(doing, path, api_path, params)
        except (aiohttp.ClientConnectorError, _NeverSent) as error:
            cause = error.error if isinstance(error, _NeverSent) else error
            raise self._unavailable(cause, f"{doing} {path!r}") from None

    async def _aget_once(
        self, doing: str, path: str, api_path: str, params: dict[str, str] | None
    ) -> tuple[int, Any]:
        import aiohttp

        if not self._logged_in:
            await asyncio.to_thread(self._login_or_never_sent)
        session = self._async_session()
        url = f"{self.addr}/v1/{self.mount}/{api_path}"
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                headers = {"X-Vault-Token": self._client.token or ""}
                async with session.get(url, params=params, headers=headers) as answer:
                    status = answer.status
                    raw = await answer.read()
                body = orjson.loads(raw) if raw else {}
                if status == 403 and attempt == 1 and _errors_say_invalid_token(body):
                    await asyncio.to_thread(self.login)
                    continue
                break
        except aiohttp.ClientConnectorError:
            raise  # never sent: _aget tries the next node, or maps it
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise self._unavailable(error, f"{doing} {path!r}") from None
        finally:
            if self._on_call is not None:
                self._on_call(doing, time.perf_counter() - started)
        if status in (200, 404):
            return status, body or {}
        if status == 403:
            raise VaultUnavailable(
                f"Vault denied secretsd's own token {doing} {path!r} (permission denied under "
                f"{self.mount}/{self.prefix}); grant secretsd's Vault policy read/list there"
            )
        if status == 503:
            raise VaultUnavailable(f"Vault at {self.addr} is sealed or down while {doing} {path!r}")
        raise VaultUnavailable(
            f"Vault at {self.addr} answered HTTP {status} while {doing} {path!r}; retry later"
        )

    def _async_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=64, ssl=self._ssl_context())
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                raise_for_status=False,
            )
            self._session_loop = loop
        return self._session

    def _ssl_context(self) -> Any:
        import ssl

        if not self.addr.startswith("https://"):
            return None
        if self._verify is False:
            return False
        if isinstance(self._verify, str):
            return ssl.create_default_context(cafile=self._verify)
        return ssl.create_default_context()

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.strip("/")
        validate_path(prefix, allow_empty=True)
        vault_prefix = self._vault_path(prefix) if prefix else self.prefix
        try:
            response = self._call(
                "listing",
                prefix,
                lambda: self._client.secrets.kv.v2.list_secrets(
                    path=vault_prefix, mount_point=self.mount
                ),
            )
        except hvac_errors.InvalidPath:
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
    ) -> int:
        validate_path(path)
        response = self._call(
            "writing",
            path,
            lambda: self._client.secrets.kv.v2.create_or_update_secret(
                path=self._vault_path(path),
                secret=dict(data),
                cas=cas,
                mount_point=self.mount,
            ),
        )
        body = response["data"]
        # The write answer carries the custom metadata: rewrite it only when the
        # binary-key marker must change, so plain writes stay one Vault call.
        custom = dict(body.get("custom_metadata") or {})
        marker = ",".join(sorted(binary_keys & frozenset(data)))
        if custom.get(BINARY_KEYS_METADATA, "") != marker:
            if marker:
                custom[BINARY_KEYS_METADATA] = marker
            else:
                custom.pop(BINARY_KEYS_METADATA, None)
            self._write_custom_metadata(path, custom)
        return int(body["version"])

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
        merged = dict(existing.custom_metadata)
        for key, value in (custom_metadata or {}).items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
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
            lambda: self._client.secrets.kv.v2.update_metadata(
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
                lambda: self._client.secrets.kv.v2.delete_secret_versions(
                    path=self._vault_path(path), versions=list(versions), mount_point=self.mount
                ),
            )
        else:
            self._call(
                "deleting",
                path,
                lambda: self._client.secrets.kv.v2.delete_latest_version_of_secret(
                    path=self._vault_path(path), mount_point=self.mount
                ),
            )

    def undelete(self, path: str, versions: Sequence[int]) -> None:
        validate_path(path)
        self._check_versions(self.metadata(path), versions)
        self._call(
            "undeleting",
            path,
            lambda: self._client.secrets.kv.v2.undelete_secret_versions(
                path=self._vault_path(path), versions=list(versions), mount_point=self.mount
            ),
        )

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        validate_path(path)
        self._check_versions(self.metadata(path), versions)
        self._call(
            "destroying",
            path,
            lambda: self._client.secrets.kv.v2.destroy_secret_versions(
                path=self._vault_path(path), versions=list(versions), mount_point=self.mount
            ),
        )

    def delete_all(self, path: str) -> None:
        validate_path(path)
        self.metadata(path)  # NotFound when absent
        self._call(
            "deleting all versions of",
            path,
            lambda: self._client.secrets.kv.v2.delete_metadata_and_all_versions(
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

    # -- health -----------------------------------------------------------

    def health(self) -> VaultHealth:
        """Reachable, initialised and unsealed? Never raises."""
        try:
            status = self._client.sys.read_health_status(method="GET")
        except Exception as error:
            return VaultHealth(False, False, True, self._unavailable(error, "checking").message)
        if isinstance(status, requests.Response):
            try:
                body = status.json()
            except ValueError:
                return VaultHealth(True, False, True, f"Vault at {self.addr} answered non-JSON")
        else:
            body = status
        initialized = bool(body.get("initialized"))
        sealed = bool(body.get("sealed", True))
        detail = "ok" if initialized and not sealed else "sealed or not initialised"
        return VaultHealth(True, initialized, sealed, detail)


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
    binary = frozenset(k for k in custom.get(BINARY_KEYS_METADATA, "").split(",") if k)
    data = body["data"]
    return SecretVersion(
        path=path,
        version=int(meta["version"]),
        data={str(k): _as_str(v) for k, v in data.items()},
        created_time=str(meta.get("created_time", "")),
        custom_metadata=custom,
        binary_keys=binary & frozenset(data),
    )


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


def _errors_say_invalid_token(body: Any) -> bool:
    errors = body.get("errors") if isinstance(body, dict) else None
    text = " ".join(str(e) for e in errors or [])
    return "invalid token" in text or ("token" in text and "expired" in text)


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
    import json

    return json.dumps(value, separators=(",", ":"))
