"""``secretsd policy write | read | list | delete``.

A policy file is YAML (or JSON)::

    rules:
      - path: apps/web/*
        capabilities: [read, list]
      - path: apps/web/prod/**
        capabilities: [deny]

It is validated here first, so a malformed rule is reported with its line
number in the file, then stored by the service (which validates it again).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from secretsd.cli.client_cmds import AddrOption, JsonOption, open_client
from secretsd.cli.output import print_json, table
from secretsd.errors import InvalidInput, ValidationFailed
from secretsd.policy import Policy

__all__ = ["app", "load_policy_file"]

app = typer.Typer(help="Manage deny-by-default policies.", no_args_is_help=True)


def load_policy_file(name: str, text: str, source: str) -> Policy:
    """Parse and validate a policy file; errors name the file, line and reason."""
    try:
        node = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        raise ValidationFailed(
            f"{where}: not valid YAML/JSON ({error.__class__.__name__})"
        ) from None
    rules_node: Any = node
    if isinstance(document, dict):
        if set(document) != {"rules"}:
            raise ValidationFailed(f"{source}: a policy file has one key, 'rules' (a list)")
        document = document["rules"]
        rules_node = next(value for key, value in node.value if key.value == "rules")  # type: ignore[union-attr]
    if not isinstance(document, list):
        raise ValidationFailed(f"{source}: expected a list of rules under 'rules'")
    lines = [item.start_mark.line + 1 for item in getattr(rules_node, "value", [])]
    try:
        return Policy.from_document(name, document, lines=lines)
    except ValidationFailed as error:
        raise ValidationFailed(f"{source}: {error.message}") from None


@app.command("write")
def write(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    file: Annotated[Path, typer.Argument(help="YAML or JSON rules file ('-' = stdin).")],
    addr: AddrOption = None,
) -> None:
    """Create or replace a policy from a file."""
    if str(file) == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            text, source = file.read_text(encoding="utf-8"), str(file)
        except OSError as error:
            raise InvalidInput(f"cannot read policy file {str(file)!r}: {error.strerror}") from None
    policy = load_policy_file(name, text, source)
    with open_client(addr) as client:
        answer = client.request("PUT", f"/v1/policies/{name}", json={"rules": policy.to_document()})
    typer.echo(f"policy {name!r} {'created' if answer.get('created') else 'updated'}", err=True)


@app.command("read")
def read(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Print a policy's rules (YAML, or JSON with --json)."""
    with open_client(addr) as client:
        answer = client.request("GET", f"/v1/policies/{name}")
    if as_json:
        print_json(answer)
    else:
        typer.echo(yaml.safe_dump({"rules": answer["rules"]}, sort_keys=False), nl=False)


@app.command("list")
def list_policies(as_json: JsonOption = False, addr: AddrOption = None) -> None:
    """List the policies you may read."""
    with open_client(addr) as client:
        answer = client.request("GET", "/v1/policies")
    if as_json:
        print_json(answer)
    else:
        table(["policy"], [[name] for name in answer["policies"]])


@app.command("delete")
def delete(name: Annotated[str, typer.Argument()], addr: AddrOption = None) -> None:
    """Delete a policy (tokens bound to it lose what it granted at once)."""
    with open_client(addr) as client:
        client.request("DELETE", f"/v1/policies/{name}")
    typer.echo(f"policy {name!r} deleted", err=True)
