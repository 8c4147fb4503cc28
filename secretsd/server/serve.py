"""``secretsd serve``: the parent process.

It does the once-per-start work before any worker exists: start the embedded
OpenBao (or check the external Vault), bring the schema up to date, create the
first admin token, bind the listening socket (so a busy port is a clear error,
not a worker crash), print how to log in, then run uvicorn with N workers. On
the way out it stops OpenBao.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from secretsd import __version__
from secretsd.config import RESOLVED_ENV, Settings
from secretsd.db.engine import describe_url, make_engine
from secretsd.db.migrate import upgrade_schema
from secretsd.embedded import EmbeddedOpenBao
from secretsd.errors import ConfigError
from secretsd.fsutil import ensure_private_dir
from secretsd.server.app import make_backend
from secretsd.server.state import ensure_admin_token

__all__ = ["prepare", "serve"]

log = logging.getLogger(__name__)


class _Terminated(Exception):
    """SIGTERM reached the parent: shut down in order."""


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise _Terminated


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {error.strerror}; choose another --port "
            "(or SECRETSD_PORT) or stop what uses it"
        ) from None
    sock.set_inheritable(True)
    return sock


def prepare(
    settings: Settings, say: Callable[[str], None]
) -> tuple[Settings, EmbeddedOpenBao | None, Path | None]:
    """Start Vault if embedded, migrate, bootstrap; return the workers' settings."""
    ensure_private_dir(settings.data_dir)
    embedded: EmbeddedOpenBao | None = None
    worker_settings = settings
    if settings.embedded:
        embedded = EmbeddedOpenBao(
            settings.data_dir,
            mount=settings.vault_mount,
            prefix=settings.vault_prefix,
            bao_binary=settings.bao_binary,
        )
        first = not embedded.initialized_marker.exists()
        say(
            "Starting the embedded OpenBao"
            + (" (first start: initialising it, a few seconds)" if first else "")
            + "..."
        )
        credentials = embedded.start()
        embedded.supervise()
        worker_settings = settings.model_copy(
            update={
                "vault_addr": credentials.addr,
                "vault_role_id": credentials.role_id,
                "vault_secret_id_file": credentials.secret_id_file,
                "vault_token": None,
                "vault_token_file": None,
                "vault_secret_id": None,
            }
        )
    try:
        backend = make_backend(worker_settings)
        backend.login()  # fail fast on wrong external credentials
        backend.close()
        engine = make_engine(settings.sqlalchemy_url)
        try:
            upgrade_schema(engine)
            from secretsd.auth.tokens import TokenStore

            created = ensure_admin_token(settings, TokenStore(engine))
        finally:
            engine.dispose()
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return worker_settings, embedded, created


_ADMIN_ELSEWHERE = (
    "created earlier by another replica or data dir; ask its operator, or start a new "
    "database with SECRETSD_BOOTSTRAP_TOKEN set"
)


def _banner(
    settings: Settings,
    worker_settings: Settings,
    port: int,
    embedded: EmbeddedOpenBao | None,
    created: Path | None,
) -> str:
    host = settings.host
    shown_host = f"[{host}]" if ":" in host else host
    addr = f"{'https' if settings.tls else 'http'}://{shown_host}:{port}"
    token_file = settings.admin_token_file
    vault = (
        f"embedded OpenBao at {worker_settings.vault_addr} (data in {embedded.root})"
        if embedded is not None
        else f"{settings.vault_addr} (mount {settings.vault_mount}, prefix {settings.vault_prefix})"
    )
    if created is not None:
        admin_line = f"{token_file} (created now, mode 0600; keep it safe)"
    elif token_file.exists():
        admin_line = f"{token_file}"
    else:
        admin_line = _ADMIN_ELSEWHERE
    return "\n".join(
        [
            f"secretsd {__version__} is serving on {addr} ({settings.workers} worker"
            f"{'s' if settings.workers > 1 else ''})",
            f"  Vault:       {vault}",
            f"  Database:    {describe_url(settings.sqlalchemy_url)}",
            f"  Admin token: {admin_line}",
            "Log in with:",
            f"  export SECRETSD_ADDR={addr}",
            f"  export SECRETSD_TOKEN_FILE={token_file}",
            '  curl -H "Authorization: Bearer $(cat $SECRETSD_TOKEN_FILE)" '
            "$SECRETSD_ADDR/v1/metadata?list=true",
            f"API docs: {addr}/docs    Stop: Ctrl-C",
        ]
    )


def serve(settings: Settings, say: Callable[[str], None] | None = None) -> None:
    """Run secretsd until interrupted."""
    import uvicorn

    from secretsd.server.workers import BackoffMultiprocess, hand_settings_to_workers

    out = say or (lambda text: print(text, flush=True))
    settings.check_listener()
    # Every file secretsd, its workers and OpenBao create is private to its user.
    os.umask(0o077)
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default SIGTERM disposition that would kill us before OpenBao is stopped.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker_settings, embedded, created = prepare(settings, out)
    sock: socket.socket | None = None
    settings_file: Path | None = None
    try:
        sock = bind_socket(settings.host, settings.port)
        port = int(sock.getsockname()[1])
        settings_file = hand_settings_to_workers(worker_settings, settings.data_dir / "run")
        if settings.workers > 1:
            metrics_dir = settings.data_dir / "run" / f"metrics-{os.getpid()}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        config = uvicorn.Config(
            "secretsd.server.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=settings.log_level,
            timeout_graceful_shutdown=5,
            server_header=False,
            ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
            ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        )
        out(_banner(settings, worker_settings, port, embedded, created))
        if settings.workers > 1:
            BackoffMultiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if sock is not None:
            sock.close()
        os.environ.pop(RESOLVED_ENV, None)
        if settings_file is not None:
            settings_file.unlink(missing_ok=True)
        metrics_dir_env = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir_env:
            shutil.rmtree(metrics_dir_env, ignore_errors=True)
        if embedded is not None:
            out("Stopping the embedded OpenBao...")
            embedded.stop()
        sys.stdout.flush()
