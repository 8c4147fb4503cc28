"""``secretsd doctor``: find insecure settings of a deployment before an attacker does.

Each check looks at one thing (the data dir's file modes, the listener, the
Vault connection, proxy trust, where secrets are configured, a running
server's readiness) and returns :class:`Finding` objects: ``fail`` for what
exposes secrets or the audit trail now, ``warn`` for what is risky, ``ok``
otherwise. Checks only read: the doctor never fixes or creates anything.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from secretsd.config import SECRET_ENV, Settings

__all__ = ["Finding", "run_checks"]


@dataclass(frozen=True)
class Finding:
    """One result: ``status`` is ``ok``, ``warn`` or ``fail``; ``fix`` says what to do."""

    check: str
    status: str
    detail: str
    fix: str = ""


Check = Callable[[Settings], Iterator[Finding]]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _private_files(settings: Settings) -> list[Path]:
    data = settings.data_dir
    files = [
        data / "secretsd.db",
        data / "secretsd.db-wal",
        data / "secretsd.db-shm",
        data / "admin-token",
        settings.resolved_audit_key_file,
        settings.resolved_audit_checkpoint_file,
        data / "openbao" / "seal.key",
        data / "openbao" / "role-id",
        data / "openbao" / "secret-id",
        *sorted((data / "run").glob("settings-*.json")),
    ]
    if settings.audit_file and settings.audit_file != "-":
        files.append(Path(settings.audit_file))
    if settings.tls_key_file is not None:
        files.append(settings.tls_key_file)
    return files


def check_data_dir(settings: Settings) -> Iterator[Finding]:
    """The data dir is 0700 and every key, token, database and audit file in it is 0600."""
    data = settings.data_dir
    if not data.is_dir():
        yield Finding(
            "data-dir",
            "warn",
            f"{data} does not exist (secretsd never ran here)",
            "check --data-dir / SECRETSD_DATA_DIR",
        )
        return
    for folder in (data, data / "openbao", data / "run"):
        if folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
            mode = oct(stat.S_IMODE(folder.stat().st_mode))
            yield Finding(
                "file-modes",
                "fail",
                f"{folder} is {mode}: other users can look in",
                f"chmod 700 {folder}",
            )
    exposed = []
    for path in _private_files(settings):
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            exposed.append(f"{path} ({oct(stat.S_IMODE(path.stat().st_mode))})")
    if exposed:
        yield Finding(
            "file-modes",
            "fail",
            "readable by other users: " + ", ".join(exposed),
            "chmod 600 these files (secretsd creates them 0600 since this version)",
        )
    else:
        yield Finding(
            "file-modes", "ok", f"keys, tokens, database and audit files in {data} are private"
        )


def check_audit_anchor(settings: Settings) -> Iterator[Finding]:
    """The audit chain has its key outside the database (and checkpoints)."""
    key = settings.resolved_audit_key_file
    if not key.is_file():
        yield Finding(
            "audit-key",
            "warn",
            f"no audit key at {key}: the chain is not anchored yet",
            "start `secretsd serve` once (it creates it), and back the key up off-host",
        )
    else:
        yield Finding("audit-key", "ok", f"the audit chain is keyed ({key}); keep a copy off-host")


def check_listener(settings: Settings) -> Iterator[Finding]:
    """TLS on any listener other than loopback."""
    if settings.tls:
        yield Finding("listener", "ok", f"TLS on {settings.host}:{settings.port}")
    elif _loopback(settings.host):
        yield Finding("listener", "ok", f"plain HTTP on loopback {settings.host}:{settings.port}")
    elif settings.allow_insecure_http:
        yield Finding(
            "listener",
            "warn",
            f"plain HTTP on {settings.host} (SECRETSD_ALLOW_INSECURE_HTTP): tokens and "
            "secrets are in clear text unless TLS terminates in front",
            "set SECRETSD_TLS_CERT_FILE and SECRETSD_TLS_KEY_FILE",
        )
    else:
        yield Finding(
            "listener",
            "fail",
            f"plain HTTP on {settings.host} (serve refuses this)",
            "set SECRETSD_TLS_CERT_FILE/KEY_FILE or listen on 127.0.0.1",
        )


def check_vault_connection(settings: Settings) -> Iterator[Finding]:
    """Vault is reached over TLS (verified) unless it is on loopback."""
    if settings.embedded:
        yield Finding("vault-transport", "ok", "embedded OpenBao on loopback")
        return
    addr = settings.vault_addr or ""
    parts = urlsplit(addr)
    if not settings.vault_tls_verify:
        yield Finding(
            "vault-transport",
            "fail",
            "SECRETSD_VAULT_TLS_VERIFY=false: anyone on the path can impersonate Vault",
            "set SECRETSD_VAULT_CA_CERT instead",
        )
    elif parts.scheme == "http" and not _loopback(parts.hostname or ""):
        yield Finding(
            "vault-transport",
            "fail",
            f"Vault at {addr} over plain HTTP: the Vault "
            "token and every secret cross the network in clear text",
            "use an https:// SECRETSD_VAULT_ADDR",
        )
    else:
        yield Finding("vault-transport", "ok", f"Vault at {addr}")


def check_vault_mode(settings: Settings) -> Iterator[Finding]:
    """A dev-mode Vault (in-memory storage, known root token) loses every secret on restart."""
    if settings.embedded:
        return
    import httpx

    verify: bool | str = settings.vault_tls_verify
    if settings.vault_ca_cert is not None:
        verify = str(settings.vault_ca_cert)
    try:
        status = httpx.get(f"{settings.vault_addr}/v1/sys/seal-status", timeout=3, verify=verify)
        storage = status.json().get("storage_type", "")
    except (httpx.HTTPError, ValueError) as error:
        yield Finding(
            "vault-mode",
            "warn",
            f"cannot ask Vault at {settings.vault_addr} ({type(error).__name__})",
            "check that Vault runs and is reachable",
        )
        return
    if storage == "inmem":
        yield Finding(
            "vault-mode",
            "fail",
            f"Vault at {settings.vault_addr} runs in dev mode "
            "(in-memory storage, root token): every secret is lost on restart",
            "point secretsd at a real Vault/OpenBao, or use the embedded default",
        )
    else:
        yield Finding("vault-mode", "ok", f"Vault storage: {storage or 'unknown'}")


def check_proxy_trust(settings: Settings) -> Iterator[Finding]:
    """Forwarded headers are trusted only from named proxies, never from everyone."""
    trusting = {
        name: getattr(settings, name)
        for name in type(settings).model_fields
        if "proxy" in name or "forwarded" in name
    }
    wide = [name for name, value in trusting.items() if _everyone(value)]
    if wide:
        yield Finding(
            "proxy-trust",
            "fail",
            f"{', '.join(wide)} trusts forwarded headers from "
            "any address: any client can forge its address (CIDR bindings, audit)",
            "name only your proxies' addresses",
        )
    else:
        yield Finding("proxy-trust", "ok", "forwarded headers are not trusted from everyone")


def _everyone(value: object) -> bool:
    values = value if isinstance(value, list | tuple | set | frozenset) else [value]
    return any(str(v).strip() in ("*", "0.0.0.0/0", "::/0") for v in values)


def check_secrets_in_environment(settings: Settings) -> Iterator[Finding]:
    """Secrets given as environment variables are readable in /proc and inherited."""
    del settings
    given = [name for name in SECRET_ENV if os.environ.get(name)]
    if given:
        yield Finding(
            "secrets-in-env",
            "warn",
            f"{', '.join(given)} set in the environment: "
            "readable in /proc/<pid>/environ and inherited by child processes",
            "use SECRETSD_VAULT_TOKEN_FILE / SECRETSD_VAULT_SECRET_ID_FILE or a 0600 config file",
        )
    else:
        yield Finding("secrets-in-env", "ok", "no secret settings in the environment")


def check_config_file(settings: Settings, config_file: Path | None) -> Iterator[Finding]:
    """A config file holding secrets must be private."""
    del settings
    if config_file is None or not config_file.is_file():
        return
    mode = stat.S_IMODE(config_file.stat().st_mode)
    text = config_file.read_text(errors="replace")
    holds = [
        n
        for n in ("vault_token", "vault_secret_id", "database_url", "bootstrap_token")
        if n in text
    ]
    if holds and mode & 0o077:
        yield Finding(
            "config-file",
            "fail",
            f"{config_file} ({oct(mode)}) holds {', '.join(holds)} and other users can read it",
            f"chmod 600 {config_file}",
        )
    else:
        yield Finding("config-file", "ok", f"{config_file} is {oct(mode)}")


def check_running(settings: Settings, addr: str | None) -> Iterator[Finding]:
    """Ask the running server whether it is ready, and what is not."""
    import httpx

    if addr is None:
        scheme = "https" if settings.tls else "http"
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
        addr = f"{scheme}://{host}:{settings.port}"
    try:
        answer = httpx.get(f"{addr}/readyz", timeout=5, verify=False)  # noqa: S501 - only reads health
        body = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        yield Finding(
            "server",
            "warn",
            f"no secretsd answers at {addr} ({type(error).__name__})",
            "start it, or pass --addr",
        )
        return
    if answer.status_code == 200:
        yield Finding("server", "ok", f"secretsd at {addr} is ready")
        return
    failing = [
        f"{name}: {check.get('detail')}"
        for name, check in body.get("checks", {}).items()
        if not check.get("ok")
    ]
    yield Finding(
        "server",
        "fail",
        f"secretsd at {addr} is not ready: " + "; ".join(failing),
        "see the server's log",
    )


def run_checks(
    settings: Settings,
    *,
    config_file: Path | None = None,
    addr: str | None = None,
    running: bool = True,
    vault: bool = True,
) -> list[Finding]:
    """Every check, in a stable order."""
    findings: list[Finding] = []
    for check in (
        check_data_dir,
        check_audit_anchor,
        check_listener,
        check_vault_connection,
        *((check_vault_mode,) if vault else ()),
        check_proxy_trust,
        check_secrets_in_environment,
    ):
        findings.extend(check(settings))
    findings.extend(check_config_file(settings, config_file))
    if running:
        findings.extend(check_running(settings, addr))
    return findings
