"""The one configuration loader.

Precedence, highest first: command-line flags (passed as ``overrides``), then
``SECRETSD_*`` environment variables, then the TOML config file
(``--config`` / ``SECRETSD_CONFIG``), then defaults. There is no module-level
settings instance: entry points call :func:`load_settings` and hand the
result down, so tests can run several configurations in one process.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from secretsd.errors import ConfigError, InvalidPath
from secretsd.ref import validate_path

__all__ = [
    "CONFIG_ENV",
    "RESOLVED_ENV",
    "SECRET_ENV",
    "Settings",
    "default_data_dir",
    "load_settings",
    "settings_from_env",
    "settings_to_env",
]

CONFIG_ENV = "SECRETSD_CONFIG"
#: Set by ``secretsd serve`` for its worker processes: the path of a 0600 file in the
#: private data dir holding the parent's resolved settings. Only the path travels in
#: the environment: secrets in /proc/<pid>/environ are readable by the same user and
#: inherited by every child process.
RESOLVED_ENV = "SECRETSD_RESOLVED_SETTINGS_FILE"
#: The ``SECRETSD_*`` variables that hold secrets; ``serve`` removes them from its
#: environment once resolved, so workers and their children never inherit them.
SECRET_ENV = (
    "SECRETSD_VAULT_TOKEN",
    "SECRETSD_VAULT_SECRET_ID",
    "SECRETSD_DATABASE_URL",
    "SECRETSD_BOOTSTRAP_TOKEN",
)


def default_data_dir() -> Path:
    """Where the embedded OpenBao, SQLite and the admin token live by default."""
    return Path(platformdirs.user_data_dir("secretsd", appauthor=False))


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class Settings(BaseSettings):
    """Everything secretsd can be told. Each field maps to ``SECRETSD_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="SECRETSD_",
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    workers: int = Field(default_factory=_default_workers, ge=1, le=64)
    log_level: str = "info"

    # Vault / OpenBao. No address means: run the embedded OpenBao.
    vault_addr: str | None = None
    # Other nodes of the same Vault/OpenBao cluster, tried in turn when the current one
    # refuses connections (a request that never reached Vault is safe to send elsewhere).
    vault_fallback_addrs: list[str] = Field(default_factory=list)
    vault_token: SecretStr | None = None
    vault_token_file: Path | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_secret_id_file: Path | None = None
    vault_approle_mount: str = "approle"
    vault_mount: str = "secret"
    vault_prefix: str = "secretsd"
    vault_ca_cert: Path | None = None
    vault_tls_verify: bool = True
    vault_timeout: float = Field(default=5.0, gt=0)
    bao_binary: str | None = None

    # secretsd's own database (SQLite in data_dir when unset).
    database_url: SecretStr | None = None
    bootstrap_token: SecretStr | None = None

    # Read cache and change detection.
    cache_enabled: bool = True
    # Answer plain reads below the framework (same decision as the route; off for comparison).
    fast_read: bool = True
    # Vault down: serve what any worker/replica last read, up to this age (0 = off).
    stale_max_age: float = Field(default=86400.0, ge=0)
    # Vault down: how often the circuit breaker's probe asks whether it is back.
    vault_probe_interval: float = Field(default=1.0, gt=0, le=60)
    cache_ttl: float = Field(default=1.0, ge=0)
    watch_interval: float = Field(default=0.5, gt=0)
    max_wait: float = Field(default=60.0, gt=0, le=3600)
    change_poll_interval: float = Field(default=0.1, gt=0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    audit_file: str | None = None
    # The audit chain's anchors, outside the database (defaults: in data_dir).
    audit_key_file: Path | None = None
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_interval: float = Field(default=1.0, ge=0, le=3600)

    # TLS for secretsd's own listener. Plain HTTP is refused off loopback unless
    # allow_insecure_http says TLS terminates in front (ingress, mesh, proxy).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    allow_insecure_http: bool = False

    # The edge (secretsd/server/edge.py, ratelimit.py): proxies whose X-Forwarded-For is
    # believed (addresses or CIDRs, comma-separated; none by default), failed-authentication
    # limits in the `limits` notation ("" turns one off; "per client" counts logins per
    # client address and role, bad tokens per client address), and the API docs.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_failure_limit_per_client: str = "30/minute"
    auth_failure_limit_per_role: str = "120/minute"
    rate_limit_storage: str = "memory://"
    docs_enabled: bool = True

    # The web console (/ui): how long a sign-in lasts, in seconds (the session token's TTL
    # and the cookie's lifetime; never longer than the token or AppRole login signed in with).
    console_session_ttl: int = Field(default=3600, ge=60, le=86400)

    @field_validator("vault_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return _checked_path(value.strip("/"), allow_empty=True)

    @field_validator("vault_mount", "vault_approle_mount")
    @classmethod
    def _check_mount(cls, value: str) -> str:
        return _checked_path(value.strip("/"), allow_empty=False)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR network; name the proxies in "
                    "front of secretsd, e.g. 10.0.0.5,10.1.0.0/16"
                ) from None
        return value

    @field_validator("auth_failure_limit_per_client", "auth_failure_limit_per_role")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        try:
            from limits import parse_many
        except ImportError:  # the client-only install; the server checks it when it starts
            return value.strip()
        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit; write e.g. 30/minute or 5/second;100/hour, "
                    "or an empty string for no limit"
                ) from None
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        allowed = ("critical", "error", "warning", "info", "debug")
        if value.lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value.lower()

    @field_validator("vault_addr")
    @classmethod
    def _check_vault_addr(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, e.g. https://vault.example:8200")
        return value.rstrip("/")

    @field_validator("vault_fallback_addrs")
    @classmethod
    def _check_fallback_addrs(cls, values: list[str]) -> list[str]:
        checked = []
        for value in values:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"{value!r} must be an http:// or https:// URL, e.g. https://vault-2.example:8200"
                )
            checked.append(value.rstrip("/"))
        return checked

    # -- derived values -------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    def check_listener(self) -> None:
        """Refuse start-up settings that would serve secrets insecurely."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(
                "set both SECRETSD_TLS_CERT_FILE and SECRETSD_TLS_KEY_FILE, or neither"
            )
        for setting, path in (
            ("TLS_CERT_FILE", self.tls_cert_file),
            ("TLS_KEY_FILE", self.tls_key_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"SECRETSD_{setting} {str(path)!r} is not a readable file")
        if not self.tls and not self.allow_insecure_http and not _is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve secrets over plain HTTP on {self.host}: set "
                "SECRETSD_TLS_CERT_FILE and SECRETSD_TLS_KEY_FILE, or listen on 127.0.0.1, or "
                "set SECRETSD_ALLOW_INSECURE_HTTP=true when TLS terminates in front of secretsd"
            )

    @property
    def embedded(self) -> bool:
        """True when secretsd runs its own OpenBao (no Vault address configured)."""
        return self.vault_addr is None

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            # Plain postgresql:// means psycopg 3, the driver we ship.
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            elif url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            return url
        return f"sqlite:///{self.data_dir / 'secretsd.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def resolved_audit_key_file(self) -> Path:
        """The audit chain's HMAC key (0600), created on first start."""
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def resolved_audit_checkpoint_file(self) -> Path:
        """Where the audit writer appends signed checkpoints of the chain."""
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    def redacted(self) -> dict[str, Any]:
        """Every setting, with secrets masked, for ``secretsd config show``."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = (
                    _redact_url(value.get_secret_value()) if name == "database_url" else "********"
                )
            elif isinstance(value, Path):
                value = str(value)
            shown[name] = value
        shown["embedded"] = self.embedded
        return shown

    def plain_dict(self) -> dict[str, Any]:
        """Every setting with secrets in the clear: only for handing to our own workers."""
        plain: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):
                value = str(value)
            plain[name] = value
        return plain


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked_path(value: str, *, allow_empty: bool) -> str:
    try:
        return validate_path(value, allow_empty=allow_empty)
    except InvalidPath as error:
        raise ValueError(error.message) from None


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:********@{host}"))


def _describe_validation_error(error: ValidationError, config_file: Path | None) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        where = f"SECRETSD_{name.upper()} / --{name.replace('_', '-')}"
        if config_file is not None:
            where += f" / {name} in {config_file}"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting; see `secretsd config show` for the known ones"
        lines.append(f"setting {name!r} ({where}): {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | str | None = None,
) -> Settings:
    """Resolve settings: flags (``overrides``) > environment > config file > defaults.

    Raises ConfigError with one line per problem, naming where each setting
    comes from, so the user knows which place to fix.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = os.environ[CONFIG_ENV]
    path = Path(config_file).expanduser() if config_file is not None else None
    if path is not None and not path.is_file():
        raise ConfigError(
            f"config file {str(path)!r} does not exist or is not a file; "
            f"fix --config / {CONFIG_ENV} or create the file"
        )

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        loaded = _Loaded(**given)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, path)) from None
    except ValueError as error:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error}") from None
    return Settings.model_validate(loaded.plain_dict())


def settings_to_env(settings: Settings) -> str:
    """Serialise resolved settings for our worker processes (written to RESOLVED_ENV's file)."""
    return json.dumps(settings.plain_dict())


def settings_from_env() -> Settings | None:
    """The settings a parent ``secretsd serve`` resolved for this worker, if any."""
    path = os.environ.get(RESOLVED_ENV)
    if not path:
        return None
    return Settings.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
