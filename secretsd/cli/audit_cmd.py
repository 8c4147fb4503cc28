"""``secretsd audit list`` (through the API) and ``secretsd audit verify`` (in the database).

``verify`` reads the same settings as the server (``--config``, ``--data-dir``,
``SECRETSD_DATABASE_URL``), so it needs no token and works while the server
is down: exactly when an auditor needs it. ``list`` needs a token whose
policies grant ``read`` on ``sys/audit``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags
from secretsd.errors import ConfigError

if TYPE_CHECKING:
    from secretsd.audit_anchor import AuditKey, Checkpoint
    from secretsd.config import Settings

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
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document: records and whether more exist.")
    ] = False,
    addr: Annotated[str | None, typer.Option("--addr", help="secretsd's address.")] = None,
) -> None:
    """Show audit records with filters, following pages as needed."""
    from secretsd.audit_clean import escape_text
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
    more = bool(cursor)
    if as_json:
        typer.echo(
            json.dumps(
                {"records": records, "more": more, "next_cursor": cursor or None},
                indent=2,
                sort_keys=True,
            )
        )
        return
    if more:
        which = "newest" if newest_first else "first"
        typer.echo(
            f"Showing the {which} {len(records)} records; more match. Use --limit 0 for all, "
            "or narrow with --since/--until/--path-prefix.",
            err=True,
        )
    table(
        ["seq", "time", "identity", "action", "path", "version", "outcome", "client", "detail"],
        [
            # Records written by older versions may hold raw control characters.
            [
                escape_text(cell)
                for cell in (
                    str(r["seq"]),
                    str(r["time"]),
                    str(r.get("display_name") or r.get("identity") or "-"),
                    str(r["action"]),
                    str(r["path"]),
                    "-" if r.get("version") is None else str(r["version"]),
                    str(r["outcome"]),
                    str(r.get("client") or "-"),
                    str(r.get("detail") or ""),
                )
            ]
            for r in records
        ],
    )


@app.command("verify")
def verify(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    key_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--key-file",
            help="An audit key file (repeat for replicas with their own keys); "
            "default: SECRETSD_AUDIT_KEY_FILE or <data dir>/audit.key.",
            show_default=False,
        ),
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoints",
            help="A checkpoint file (repeatable); default: SECRETSD_AUDIT_CHECKPOINT_FILE or "
            "<data dir>/audit-checkpoints.jsonl.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Exit 0 when the chain is intact; 1 naming the first bad record otherwise.

    Checks every hash (keyed with the audit key, or plain sha256 for records
    written before keys existed), the links between records, the head row and
    every checkpoint written outside the database.
    """
    from secretsd.audit_verify import ChainProblem, verify_audit
    from secretsd.db.engine import describe_url, make_engine

    settings = settings_from_flags(config, data_dir=data_dir)
    _refuse_missing_database(settings)
    keys = _keys(key_file or [settings.resolved_audit_key_file], explicit=bool(key_file))
    checkpoint_files = checkpoints or [settings.resolved_audit_checkpoint_file]
    found, unreadable = _checkpoints(checkpoint_files, explicit=bool(checkpoints))
    engine = make_engine(settings.sqlalchemy_url)
    try:
        report = verify_audit(engine, keys=keys, checkpoints=found)
    finally:
        engine.dispose()
    problem = report.problem
    if problem is None and unreadable:
        problem = ChainProblem(0, unreadable[0])  # a checkpoint line that was mangled
    where = describe_url(settings.sqlalchemy_url)
    warning = ""
    if problem is None and report.keyed and not found:
        warning = (
            f"no checkpoints in {', '.join(map(str, checkpoint_files))}: records removed from "
            "the end since the last checkpoint cannot be detected"
        )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "database": where,
                    "records_checked": report.checked,
                    "keyed_records": report.keyed,
                    "unkeyed_records": report.unkeyed,
                    "checkpoints_checked": report.checkpoints,
                    "ok": problem is None,
                    "first_bad_record": problem.seq if problem else None,
                    "reason": problem.reason if problem else None,
                    "warning": warning or None,
                },
                indent=2,
            )
        )
    elif problem is None:
        typer.echo(
            f"OK: {report.checked} audit records in {where}; the hash chain is intact "
            f"({report.keyed} keyed, {report.unkeyed} from before audit keys; "
            f"{report.checkpoints} checkpoints match)."
        )
        if warning:
            typer.echo(f"Warning: {warning}.", err=True)
    else:
        typer.echo(
            f"TAMPERED: {problem.reason}. First bad record: seq {problem.seq} "
            f"({report.checked} records before it verified) in {where}.",
            err=True,
        )
    if problem is not None:
        raise typer.Exit(1)


def _refuse_missing_database(settings: Settings) -> None:
    """A mistyped --data-dir must not create an empty database and call it "unavailable"."""
    if settings.database_url is not None:
        return
    if not settings.data_dir.is_dir():
        raise ConfigError(
            f"the data dir {str(settings.data_dir)!r} does not exist; check --data-dir / "
            "SECRETSD_DATA_DIR (or set SECRETSD_DATABASE_URL)"
        )
    database = settings.data_dir / "secretsd.db"
    if not database.is_file():
        raise ConfigError(
            f"there is no secretsd database in {str(settings.data_dir)!r} (no secretsd.db); "
            "check --data-dir / SECRETSD_DATA_DIR (or set SECRETSD_DATABASE_URL)"
        )


def _keys(paths: list[Path], *, explicit: bool) -> list[AuditKey]:
    from secretsd.audit_anchor import load_audit_key

    # The default key file may be absent (a chain from before audit keys); a named one may not.
    return [load_audit_key(path) for path in paths if explicit or path.exists()]


def _checkpoints(paths: list[Path], *, explicit: bool) -> tuple[list[Checkpoint], list[str]]:
    from secretsd.audit_anchor import read_checkpoints

    found: list[Checkpoint] = []
    problems: list[str] = []
    for path in paths:
        if explicit and not path.is_file():
            raise ConfigError(f"the checkpoint file {str(path)!r} does not exist")
        items, unreadable = read_checkpoints(path)
        found.extend(items)
        problems.extend(unreadable)
    return found, problems
