"""The typer app: every command, run inside the one error boundary (``boundary``).

The console script is ``secretsd.cli.entry:main``, which answers ``secretsd
scan`` without importing typer and hands everything else to :func:`main`.
"""

from __future__ import annotations

import sys

import typer

from secretsd.cli import (
    agent_cmd,
    approle_cmd,
    audit_cmd,
    client_cmds,
    config_cmd,
    consumers_cmd,
    doctor_cmd,
    injector_cmd,
    login_cmd,
    migrate_cmd,
    policy_cmd,
    recover_cmd,
    run_cmd,
    scan_cmd,
    serve_cmd,
    token_cmd,
)
from secretsd.cli.boundary import guarded

__all__ = ["app", "main"]

app = typer.Typer(
    name="secretsd",
    help="secretsd: one interface around Vault/OpenBao for services, operators and developers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.command("serve")(serve_cmd.serve)
app.add_typer(config_cmd.app, name="config")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(token_cmd.app, name="token")
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(approle_cmd.app, name="approle")
app.command("recover-admin")(recover_cmd.recover_admin)
app.command("login")(login_cmd.login)
app.command("logout")(login_cmd.logout)
app.command("get")(client_cmds.get)
app.command("put")(client_cmds.put)
app.command("ls")(client_cmds.ls)
app.command("rm")(client_cmds.rm)
app.command("undelete")(client_cmds.undelete)
app.command("versions")(client_cmds.versions)
app.command("export")(client_cmds.export)
app.command(
    "run",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)(run_cmd.run)
app.command("scan")(scan_cmd.scan)
app.add_typer(migrate_cmd.app, name="migrate")
app.add_typer(agent_cmd.app, name="agent")
app.command("injector")(injector_cmd.injector)
app.command("consumers")(consumers_cmd.consumers)
app.command("rotate")(consumers_cmd.rotate)
app.command("doctor")(doctor_cmd.doctor)


@app.command("version")
def version() -> None:
    """Print secretsd's version."""
    from secretsd import __version__

    typer.echo(__version__)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error class, and typer's vendored copy of it (typer >= 0.20 ships its own)."""
    import click

    found: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as Vendored
    except ImportError:
        pass
    else:
        found.append(Vendored)
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    return guarded(lambda: _run_typer(argv))


def _run_typer(argv: list[str] | None) -> int:
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        result = app(args=argv, prog_name="secretsd", standalone_mode=False)
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        return 1
    except Exception as error:  # click usage errors and the like
        if isinstance(error, _usage_errors()):
            getattr(error, "show", print)()
            return 2
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    from secretsd.cli.entry import main as entry

    sys.exit(entry())
