"""``secretsd approle write | read | list | delete | secret-id | secret-ids | revoke-secret-id``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from secretsd.cli.client_cmds import AddrOption, JsonOption, open_client
from secretsd.cli.output import print_json, table

__all__ = ["app"]

app = typer.Typer(help="Manage AppRole host logins.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The role's name.")]
CidrOption = Annotated[
    list[str] | None, typer.Option("--bound-cidr", help="Allowed client network (repeat).")
]


@app.command("write")
def write(
    name: NameArg,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", "-p", help="Repeat for more.")
    ] = None,
    token_ttl: Annotated[str, typer.Option(help="Lifetime of login tokens.")] = "1h",
    token_max_ttl: Annotated[str, typer.Option(help="Renewal limit of login tokens.")] = "24h",
    bound_cidr: CidrOption = None,
    secret_id_ttl: Annotated[
        str, typer.Option(help="Default secret-id lifetime (0 = none).")
    ] = "0",
    secret_id_num_uses: Annotated[
        int, typer.Option(help="Default uses per secret-id (0 = unlimited).", min=0)
    ] = 0,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Create or update a role; prints its role_id."""
    body = {
        "policies": policy or [],
        "token_ttl": token_ttl,
        "token_max_ttl": token_max_ttl,
        "bound_cidrs": bound_cidr or [],
        "secret_id_ttl": secret_id_ttl,
        "secret_id_num_uses": secret_id_num_uses,
    }
    with open_client(addr) as client:
        role = client.request("PUT", f"/v1/auth/approle/roles/{name}", json=body)
    if as_json:
        print_json(role)
    else:
        typer.echo(role["role_id"])


@app.command("read")
def read(name: NameArg, as_json: JsonOption = False, addr: AddrOption = None) -> None:
    """Show a role (with its role_id)."""
    with open_client(addr) as client:
        role = client.request("GET", f"/v1/auth/approle/roles/{name}")
    if as_json:
        print_json(role)
    else:
        table(["field", "value"], [[k, _show(v)] for k, v in role.items()])


@app.command("list")
def list_roles(as_json: JsonOption = False, addr: AddrOption = None) -> None:
    """List roles."""
    with open_client(addr) as client:
        answer = client.request("GET", "/v1/auth/approle/roles")
    if as_json:
        print_json(answer)
    else:
        table(["role"], [[name] for name in answer["roles"]])


@app.command("delete")
def delete(name: NameArg, addr: AddrOption = None) -> None:
    """Delete a role and all its secret-ids."""
    with open_client(addr) as client:
        client.request("DELETE", f"/v1/auth/approle/roles/{name}")
    typer.echo(f"role {name!r} deleted", err=True)


@app.command("secret-id")
def secret_id(
    name: NameArg,
    num_uses: Annotated[
        int | None, typer.Option(help="Uses before it stops working (0 = unlimited).", min=0)
    ] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime, e.g. 10m.")] = None,
    bound_cidr: CidrOption = None,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Issue a secret-id: printed once on stdout, its accessor on stderr."""
    body: dict[str, Any] = {"bound_cidrs": bound_cidr or []}
    if num_uses is not None:
        body["num_uses"] = num_uses
    if ttl is not None:
        body["ttl"] = ttl
    with open_client(addr) as client:
        issued = client.request("POST", f"/v1/auth/approle/roles/{name}/secret-ids", json=body)
    if as_json:
        print_json(issued)
        return
    typer.echo(issued["secret_id"])
    uses = issued.get("uses_remaining") or "unlimited"
    expires = issued.get("expires_at") or "never"
    typer.echo(f"accessor {issued['secret_id_accessor']}, uses {uses}, expires {expires}", err=True)


@app.command("secret-ids")
def secret_ids(name: NameArg, as_json: JsonOption = False, addr: AddrOption = None) -> None:
    """List a role's secret-ids by accessor."""
    with open_client(addr) as client:
        answer = client.request("GET", f"/v1/auth/approle/roles/{name}/secret-ids")
    if as_json:
        print_json(answer)
        return
    table(
        ["accessor", "uses left", "expires", "state"],
        [
            [
                item["secret_id_accessor"],
                _show(item.get("uses_remaining") or "unlimited"),
                item.get("expires_at") or "never",
                "revoked" if item.get("revoked") else "live",
            ]
            for item in answer["secret_ids"]
        ],
    )


@app.command("revoke-secret-id")
def revoke_secret_id(
    name: NameArg,
    accessor: Annotated[str, typer.Argument(help="The secret-id's accessor.")],
    addr: AddrOption = None,
) -> None:
    """Revoke one secret-id by its accessor."""
    with open_client(addr) as client:
        client.request("DELETE", f"/v1/auth/approle/roles/{name}/secret-ids/{accessor}")
    typer.echo("revoked", err=True)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
