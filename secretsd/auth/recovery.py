"""Break-glass: mint an admin token on the server host when every admin token is gone.

Nothing on the network can do this: it needs what only the server host has,
the data directory (or the database settings) of the running service. The
token is short-lived (1 h by default), written 0600 next to the bootstrap
token, and the act is recorded in the audit chain (action ``break-glass``,
with the local user and host) before the token is handed out.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from secretsd.audit import AuditEvent, append_events
from secretsd.audit_anchor import load_or_create_audit_key
from secretsd.auth.tokens import ADMIN_POLICY, IssuedToken, TokenStore
from secretsd.config import Settings
from secretsd.db.engine import database_errors, describe_url, make_engine
from secretsd.db.migrate import upgrade_schema
from secretsd.errors import ConfigError
from secretsd.fsutil import write_private_file

__all__ = ["RECOVERY_FILE", "Recovered", "recover_admin"]

RECOVERY_FILE = "recovery-token"


@dataclass(frozen=True, slots=True)
class Recovered:
    issued: IssuedToken
    token_file: Path
    database: str


def _require_existing_database(settings: Settings) -> None:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise ConfigError(
                f"no secretsd database at {path}; run this on the server host with the "
                "server's --data-dir or --config (nothing was created)"
            )


def recover_admin(settings: Settings, *, ttl_seconds: int = 3600, reason: str = "") -> Recovered:
    """Create a short-lived admin token, audit it, write it 0600 to the data dir."""
    _require_existing_database(settings)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with database_errors(engine), engine.connect() as connection:
            if not inspect(connection).has_table("tokens"):
                raise ConfigError(
                    f"{describe_url(settings.sqlalchemy_url)} holds no secretsd schema; "
                    "point --data-dir or --config at the server's own settings"
                )
        upgrade_schema(engine)
        who = f"{getpass.getuser()}@{socket.gethostname()}"
        store = TokenStore(engine)
        issued = store.create(
            policies=[ADMIN_POLICY],
            display_name="admin (break-glass)",
            ttl_seconds=ttl_seconds,
            max_ttl_seconds=ttl_seconds,
            renewable=False,
            method="break-glass",
            meta={"by": who[:100]},
        )
        try:
            key = load_or_create_audit_key(settings.resolved_audit_key_file)  # as the server
            append_events(
                engine,
                [
                    AuditEvent(
                        action="break-glass",
                        outcome="allowed",
                        path=f"sys/tokens/{issued.info.accessor}",
                        identity=issued.info.accessor,
                        display_name=issued.info.display_name,
                        method="break-glass",
                        client=f"local:{who}"[:64],
                        detail=(reason or "admin token minted on the server host")[:300],
                    )
                ],
                key,
            )
        except BaseException:
            store.revoke_accessor(issued.info.accessor)  # never an unaudited admin token
            raise
    finally:
        engine.dispose()
    token_file = settings.data_dir / RECOVERY_FILE
    write_private_file(token_file, issued.token + "\n")
    return Recovered(issued, token_file, describe_url(settings.sqlalchemy_url))
