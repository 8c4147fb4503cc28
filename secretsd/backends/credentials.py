"""secretsd's own Vault credentials (token or AppRole) and Vault's health, as we need them."""

from __future__ import annotations

from pathlib import Path

import hvac

from secretsd.errors import ConfigError

__all__ = ["VaultAuth", "VaultHealth"]


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
