"""``secretsd audit list`` (through the API) and ``secretsd audit verify`` (in the database).

``verify`` reads the same settings as the server (``--config``, ``--data-dir``,
``SECRETSD_DATABASE_URL``), so it needs no token and works while the server
is down: exactly when an auditor needs it. ``list`` needs a token whose
policies grant ``read`` on ``sys/audit``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["app"]

app = typer.Typer(help="Inspect and verify the audit log.", no_args_is_help=True)


@app.command("list")
def list_records(
    path_prefix: Annotated[str, typer.Option(help="Only paths under this prefix.")] = "",
    identity: Annotated[str, typer.Option(help="A token accessor or display name.")] = "",
    outcome: Annotated[str, typer.Option(help="allowed, denied or error.")] = "",
    action: Annotated[str, typer.Option(help="e.g. read, write, login, policy-write.")] = "",
    since: Annotated[str, typer.Option(help="ISO 8601 time, inclusive.")] = "",
    until: Annotated[str, typer.Option(help="ISO 8601 time, exclusive.")] = "",
    limit: Annotated[int, typer.Option(help="Records to show (0 = all).", min=0)] = 100,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Newest first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per record.")] = False,
    addr: Annotated[str | None, typer.Option("--addr", help="secretsd's address.")] = None,
) -> None:
    """Show audit records with filters, following pages as needed."""
    from secretsd.cli.client_cmds import open_client
    from secretsd.cli.output import table

    params = {
        "path_prefix": path_prefix,
        "identity": identity,
        "outcome": outcome,
        "action": action,
        "since": since,
        "until": until,
        "order": "desc" if newest_first else "asc",
    }
    records: list[dict[str, object]] = []
    cursor = ""
    with open_client(addr) as client:
        while True:
            page_size = min(limit - len(records), 1000) if limit else 1000
            page = client.request(
                "GET",
                "/v1/audit",
                params={**{k: v for k, v in params.items() if v}, "limit": str(page_size),
                        **({"cursor": cursor} if cursor else {})},
            )  # fmt: skip
            records.extend(page["records"])
            cursor = page.get("next_cursor") or ""
            if not cursor or (limit and len(records) >= limit):
                break
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, sort_keys=True))
        return
    table(
        ["seq", "time", "identity", "action", "path", "version", "outcome", "client"],
        [
            [
                str(r["seq"]),
                str(r["time"]),
                str(r.get("display_name") or r.get("identity") or "-"),
                str(r["action"]),
                str(r["path"]),
                "-" if r.get("version") is None else str(r["version"]),
                str(r["outcome"]),
                str(r.get("client") or "-"),
            ]
            for r in records
        ],
    )


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
