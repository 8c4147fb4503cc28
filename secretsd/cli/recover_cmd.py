"""``secretsd recover-admin``: the break-glass path when no admin token is left.

Run on the server host as the user that owns the data directory; it works
whether the server is running or not (a running server honours the new token
at once: tokens are looked up in the shared database).
"""

from __future__ import annotations

from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["recover_admin"]


def recover_admin(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    ttl: Annotated[str, typer.Option(help="Lifetime of the token (not renewable).")] = "1h",
    reason: Annotated[str, typer.Option(help="Why, for the audit record.")] = "",
) -> None:
    """Mint a short-lived admin token from the server's own data (audited), into
    <data-dir>/recovery-token (0600)."""
    from secretsd.auth.recovery import recover_admin as recover
    from secretsd.durations import parse_duration

    seconds = parse_duration(ttl, name="ttl")
    if not seconds:
        raise typer.BadParameter("a break-glass token must expire; give e.g. --ttl 1h")
    settings = settings_from_flags(config, data_dir=data_dir)
    done = recover(settings, ttl_seconds=seconds, reason=reason)
    typer.echo(
        f"Wrote a break-glass admin token (accessor {done.issued.info.accessor}, expires "
        f"{done.issued.info.to_json()['expires_at']}) to {done.token_file}; recorded in the "
        f"audit log of {done.database}. Use it to create a lasting admin token, then revoke it:\n"
        f"  SECRETSD_TOKEN_FILE={done.token_file} secretsd token create --policy admin "
        "--ttl 0 --orphan\n"
        f"  SECRETSD_TOKEN_FILE={done.token_file} secretsd token revoke --self"
    )
