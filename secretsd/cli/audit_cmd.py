"""``secretsd audit verify``: check the audit hash chain straight in the database.

It reads the same settings as the server (``--config``, ``--data-dir``,
``SECRETSD_DATABASE_URL``), so it needs no token and works while the server
is down: exactly when an auditor needs it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["app"]

app = typer.Typer(help="Inspect and verify the audit log.", no_args_is_help=True)


@app.command("verify")
def verify(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Exit 0 when the hash chain is intact; 1 naming the first bad record otherwise."""
    from secretsd.audit import verify_chain
    from secretsd.db.engine import describe_url, make_engine

    settings = settings_from_flags(config, data_dir=data_dir)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        checked, problem = verify_chain(engine)
    finally:
        engine.dispose()
    where = describe_url(settings.sqlalchemy_url)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "database": where,
                    "records_checked": checked,
                    "ok": problem is None,
                    "first_bad_record": problem.seq if problem else None,
                    "reason": problem.reason if problem else None,
                }
            )
        )
    elif problem is None:
        typer.echo(f"OK: {checked} audit records in {where}; the hash chain is intact.")
    else:
        typer.echo(
            f"TAMPERED: {problem.reason}. First bad record: seq {problem.seq} "
            f"({checked} records before it verified) in {where}.",
            err=True,
        )
    if problem is not None:
        raise typer.Exit(1)
