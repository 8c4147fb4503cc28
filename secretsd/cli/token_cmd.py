"""``secretsd token create | lookup | renew | revoke | list``.

``create`` prints the new token alone on stdout (``TOKEN=$(secretsd token
create ...)``) and its accessor and expiry on stderr; ``--json`` prints
everything. Revoking by value reads the token from a file or stdin, never
from the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from secretsd.cli.client_cmds import AddrOption, JsonOption, open_client
from secretsd.cli.output import print_json, table
from secretsd.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(help="Issue, inspect, renew and revoke tokens.", no_args_is_help=True)


def _row(info: dict[str, Any]) -> list[str]:
    return [
        info["accessor"],
        info.get("display_name") or "-",
        ",".join(info.get("policies", [])) or "-",
        info.get("expires_at") or "never",
        "revoked" if info.get("revoked") else "live",
    ]


_COLUMNS = ["accessor", "name", "policies", "expires", "state"]


@app.command("create")
def create(
    policy: Annotated[
        list[str] | None, typer.Option("--policy", "-p", help="A policy (repeat for more).")
    ] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 1h, 7d; 0 = until revoked.")] = "24h",
    max_ttl: Annotated[str, typer.Option(help="Renewals stop here.")] = "768h",
    display_name: Annotated[str, typer.Option(help="A name for audit records.")] = "",
    renewable: Annotated[bool, typer.Option(help="May be renewed up to --max-ttl.")] = True,
    orphan: Annotated[
        bool, typer.Option("--orphan", help="Outlive the creating token (admins only).")
    ] = False,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Issue a token bound to policies (its value is shown once)."""
    body = {
        "policies": policy or [],
        "ttl": ttl,
        "max_ttl": max_ttl,
        "display_name": display_name,
        "renewable": renewable,
        **({"orphan": True} if orphan else {}),
    }
    with open_client(addr) as client:
        issued = client.request("POST", "/v1/auth/tokens", json=body)
    if as_json:
        print_json(issued)
        return
    typer.echo(issued["token"])
    typer.echo(
        f"accessor {issued['accessor']}, policies {','.join(issued['policies']) or '-'}, "
        f"expires {issued.get('expires_at') or 'never'}",
        err=True,
    )
    for warning in issued.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)


@app.command("lookup")
def lookup(
    accessor: Annotated[
        str | None, typer.Argument(help="A token's accessor (default: your own token).")
    ] = None,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Show a token's policies, expiry and state (never its value)."""
    url = f"/v1/auth/tokens/accessors/{accessor}" if accessor else "/v1/auth/tokens/self"
    with open_client(addr) as client:
        info = client.request("GET", url)
    if as_json:
        print_json(info)
    else:
        table(_COLUMNS, [_row(info)])


@app.command("list")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option(help="Show revoked tokens too.")] = False,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """List tokens by accessor (values are never stored, so never shown)."""
    with open_client(addr) as client:
        answer = client.request(
            "GET",
            "/v1/auth/tokens",
            params={"include_revoked": "true" if include_revoked else "false"},
        )
    if as_json:
        print_json(answer)
    else:
        table(_COLUMNS, [_row(info) for info in answer["tokens"]])


@app.command("renew")
def renew(
    accessor: Annotated[
        str | None, typer.Argument(help="A token's accessor (default: your own token).")
    ] = None,
    increment: Annotated[
        str | None, typer.Option(help="New lifetime from now (default: the token's TTL).")
    ] = None,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Push a token's expiry out (up to its max TTL)."""
    url = (
        f"/v1/auth/tokens/accessors/{accessor}/renew" if accessor else "/v1/auth/tokens/renew-self"
    )
    body = {"increment": increment} if increment else {}
    with open_client(addr) as client:
        info = client.request("POST", url, json=body)
    if as_json:
        print_json(info)
    else:
        typer.echo(f"{info['accessor']} now expires {info.get('expires_at') or 'never'}")


@app.command("revoke")
def revoke(
    accessor: Annotated[str | None, typer.Argument(help="The accessor of the token.")] = None,
    own: Annotated[bool, typer.Option("--self", help="Revoke the token you use.")] = False,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="Revoke the token in this file ('-' = stdin)."),
    ] = None,
    addr: AddrOption = None,
) -> None:
    """Revoke a token now: by accessor, --self, or by value from --token-file."""
    chosen = (accessor is not None) + own + (token_file is not None)
    if chosen != 1:
        raise InvalidInput("name exactly one of: an ACCESSOR, --self, or --token-file FILE")
    with open_client(addr) as client:
        if own:
            client.request("POST", "/v1/auth/tokens/revoke-self")
        elif token_file is not None:
            raw = sys.stdin.read() if str(token_file) == "-" else _read(token_file)
            client.request("POST", "/v1/auth/tokens/revoke", json={"token": raw.strip()})
        else:
            client.request("POST", f"/v1/auth/tokens/accessors/{accessor}/revoke")
    typer.echo("revoked", err=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot read --token-file {str(path)!r}: {error.strerror}") from None
