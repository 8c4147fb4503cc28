"""The client's own settings: where secretsd is and how to prove who we are.

These are not the server's settings (``secretsd.config``): the server reads
``SECRETSD_VAULT_*``, ``SECRETSD_DATABASE_URL`` and friends, the client only
the variables below, loaded by :func:`load_client_settings` alone.

Precedence: explicit arguments > environment > the file ``secretsd login``
wrote > defaults (the address defaults to the one of the last login, else
``http://127.0.0.1:8700``). Credentials are tried in this order, first match wins:

==============================  ===============================================
``SECRETSD_TOKEN``              a token
``SECRETSD_TOKEN_FILE``         a file holding a token (re-read when rejected)
``SECRETSD_ROLE_ID`` +          AppRole login (``SECRETSD_SECRET_ID_FILE``
``SECRETSD_SECRET_ID``          instead of ``SECRETSD_SECRET_ID`` keeps the
                                secret id out of the environment)
``SECRETSD_K8S_ROLE``           Kubernetes login with the service-account token
                                file ``SECRETSD_K8S_TOKEN_FILE`` (default
                                ``/var/run/secrets/kubernetes.io/serviceaccount/token``)
login file                      ``<user config dir>/secretsd/login.json``, written
                                0600 by ``secretsd login``, used only for the
                                address it was made for
==============================  ===============================================

``SECRETSD_ADDR`` (default ``http://127.0.0.1:8700``), ``SECRETSD_CACERT``
(a CA bundle for TLS) and ``SECRETSD_REPORT_VERSIONS`` (``false`` stops the
SDK's consumer-version reports, see ``secretsd.client._held``) complete the list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from secretsd.errors import ConfigError
from secretsd.fsutil import write_private_file

__all__ = [
    "CLIENT_ENV_VARS",
    "DEFAULT_ADDR",
    "DEFAULT_K8S_TOKEN_FILE",
    "NO_CREDENTIALS_HINT",
    "ClientSettings",
    "StoredLogin",
    "forget_login",
    "load_client_settings",
    "login_file",
    "read_stored_login",
    "store_login",
]

DEFAULT_ADDR = "http://127.0.0.1:8700"
DEFAULT_K8S_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

#: How to give a client credentials (shared by the SDK's and the tools' messages).
NO_CREDENTIALS_HINT = (
    "run `secretsd login`, or set SECRETSD_TOKEN or SECRETSD_TOKEN_FILE, or AppRole "
    "(SECRETSD_ROLE_ID + SECRETSD_SECRET_ID_FILE) or Kubernetes (SECRETSD_K8S_ROLE) login "
    f"variables; SECRETSD_ADDR is the service (default {DEFAULT_ADDR})"
)

#: Every environment variable the client reads (documented in README.md).
CLIENT_ENV_VARS = (
    "SECRETSD_ADDR",
    "SECRETSD_TOKEN",
    "SECRETSD_TOKEN_FILE",
    "SECRETSD_ROLE_ID",
    "SECRETSD_SECRET_ID",
    "SECRETSD_SECRET_ID_FILE",
    "SECRETSD_K8S_ROLE",
    "SECRETSD_K8S_TOKEN_FILE",
    "SECRETSD_CACERT",
    "SECRETSD_REPORT_VERSIONS",
)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where the service is and which credentials to use; secrets are masked in repr."""

    addr: str = DEFAULT_ADDR
    token: str | None = None
    token_file: Path | None = None
    role_id: str | None = None
    secret_id: str | None = None
    secret_id_file: Path | None = None
    k8s_role: str | None = None
    k8s_token_file: Path = DEFAULT_K8S_TOKEN_FILE
    cacert: Path | None = None
    #: Report which versions this process holds (``PUT /v1/consumers``).
    report_versions: bool = True
    #: Where the token came from, for messages: "argument", "SECRETSD_TOKEN", "login file"...
    credentials_from: str = ""

    def __repr__(self) -> str:
        return (
            f"ClientSettings(addr={self.addr!r}, credentials={self.credential_kind!r}, "
            f"token={'<hidden>' if self.token else None}, "
            f"secret_id={'<hidden>' if self.secret_id else None})"
        )

    @property
    def credential_kind(self) -> str:
        """``token``, ``token_file``, ``approle``, ``kubernetes`` or ``none``."""
        if self.token is not None:
            return "token"
        if self.token_file is not None:
            return "token_file"
        if self.role_id is not None:
            return "approle"
        if self.k8s_role is not None:
            return "kubernetes"
        return "none"

    def without_credentials(self) -> ClientSettings:
        """The same service and TLS settings, no credentials (for an explicit login call)."""
        return replace(
            self,
            token=None,
            token_file=None,
            role_id=None,
            secret_id=None,
            secret_id_file=None,
            k8s_role=None,
            credentials_from="",
        )

    def read_secret_id(self) -> str:
        if self.secret_id is not None:
            return self.secret_id
        if self.secret_id_file is not None:
            return _read_text(self.secret_id_file, "SECRETSD_SECRET_ID_FILE")
        raise ConfigError(
            "SECRETSD_ROLE_ID is set but no secret id: set SECRETSD_SECRET_ID_FILE "
            "(or SECRETSD_SECRET_ID)"
        )

    def read_token_file(self) -> str:
        assert self.token_file is not None
        return _read_text(self.token_file, "SECRETSD_TOKEN_FILE")

    def read_k8s_jwt(self) -> str:
        return _read_text(self.k8s_token_file, "SECRETSD_K8S_TOKEN_FILE")


def _read_text(path: Path, name: str) -> str:
    try:
        value = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read {name} {str(path)!r}: {error.strerror}") from None
    if not value:
        raise ConfigError(f"{name} {str(path)!r} is empty")
    return value


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(
        f"{name} must be true or false (also 1/0, yes/no, on/off); got {value[:20]!r}"
    )


def _check_addr(addr: str) -> str:
    parts = urlsplit(addr)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"SECRETSD_ADDR must be an http:// or https:// URL, e.g. {DEFAULT_ADDR}; "
            f"got {addr[:80]!r}"
        )
    return addr.rstrip("/")


# -- the login file --------------------------------------------------------------


def login_file() -> Path:
    """``<user config dir>/secretsd/login.json`` (``$XDG_CONFIG_HOME`` on Linux)."""
    return Path(platformdirs.user_config_dir("secretsd", appauthor=False)) / "login.json"


@dataclass(frozen=True, slots=True)
class StoredLogin:
    addr: str
    token: str

    def __repr__(self) -> str:
        return f"StoredLogin(addr={self.addr!r}, token=<hidden>)"


def store_login(addr: str, token: str) -> Path:
    """Write the token for ``addr`` to the login file, mode 0600."""
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_private_file(path, json.dumps({"addr": _check_addr(addr), "token": token}) + "\n")
    return path


def read_stored_login() -> StoredLogin | None:
    path = login_file()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return StoredLogin(str(raw["addr"]), str(raw["token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"the login file {str(path)!r} is unreadable or corrupt; run `secretsd login` again"
        ) from None


def forget_login() -> bool:
    """Remove the login file; True if there was one."""
    try:
        login_file().unlink()
    except FileNotFoundError:
        return False
    return True


# -- loading ---------------------------------------------------------------------


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value).expanduser() if value else None


def load_client_settings(
    addr: str | None = None,
    token: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    use_login_file: bool = True,
) -> ClientSettings:
    """The client's settings from arguments, then ``env`` (default ``os.environ``)."""
    environ = os.environ if env is None else env

    def var(name: str) -> str | None:
        return environ.get(name) or None

    explicit_addr = addr or var("SECRETSD_ADDR")
    has_credentials = token is not None or any(
        var(name)
        for name in (
            "SECRETSD_TOKEN",
            "SECRETSD_TOKEN_FILE",
            "SECRETSD_ROLE_ID",
            "SECRETSD_K8S_ROLE",
        )
    )
    # The login file is read only when it can matter, so a corrupt one never
    # breaks a process that is configured otherwise.
    stored = None
    if use_login_file and not (explicit_addr and has_credentials):
        stored = read_stored_login()
    address = _check_addr(explicit_addr or (stored.addr if stored else None) or DEFAULT_ADDR)
    settings = ClientSettings(
        addr=address,
        cacert=_path(var("SECRETSD_CACERT")),
        report_versions=_flag(var("SECRETSD_REPORT_VERSIONS"), "SECRETSD_REPORT_VERSIONS"),
        k8s_token_file=_path(var("SECRETSD_K8S_TOKEN_FILE")) or DEFAULT_K8S_TOKEN_FILE,
    )
    if token is not None:
        return replace(settings, token=token, credentials_from="argument")
    if var("SECRETSD_TOKEN"):
        return replace(settings, token=var("SECRETSD_TOKEN"), credentials_from="SECRETSD_TOKEN")
    if var("SECRETSD_TOKEN_FILE"):
        return replace(
            settings,
            token_file=_path(var("SECRETSD_TOKEN_FILE")),
            credentials_from="SECRETSD_TOKEN_FILE",
        )
    if var("SECRETSD_ROLE_ID"):
        return replace(
            settings,
            role_id=var("SECRETSD_ROLE_ID"),
            secret_id=var("SECRETSD_SECRET_ID"),
            secret_id_file=_path(var("SECRETSD_SECRET_ID_FILE")),
            credentials_from="AppRole login",
        )
    if var("SECRETSD_K8S_ROLE"):
        return replace(
            settings, k8s_role=var("SECRETSD_K8S_ROLE"), credentials_from="Kubernetes login"
        )
    if stored is not None and stored.addr == address:
        return replace(settings, token=stored.token, credentials_from="login file")
    return settings
