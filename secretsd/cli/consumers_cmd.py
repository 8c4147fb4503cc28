"""``secretsd consumers <path>`` and ``secretsd rotate <path> --wait``.

``consumers`` shows who holds which version of a secret (agents and SDK
processes report it). ``rotate`` writes a new version (keys merged into the
latest) and, with ``--wait``, waits until every live consumer holds it; on
timeout it names the laggards and exits 6 (unavailable).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from secretsd.cli.client_cmds import AddrOption, JsonOption, open_client, parse_pairs
from secretsd.cli.output import is_tty, print_json, table
from secretsd.errors import InvalidInput, Unavailable

__all__ = ["consumers", "rotate"]


def _holders(client: Any, path: str) -> list[dict[str, Any]]:
    answer = client.request("GET", f"/v1/consumers/{path}")
    found: list[dict[str, Any]] = answer["consumers"]
    return found


def _show(rows: list[dict[str, Any]]) -> None:
    now = time.time()
    table(
        ["CONSUMER", "KIND", "IDENTITY", "VERSION", "LAST SEEN", "LIVE"],
        [
            [
                r["consumer"],
                r["kind"],
                r["identity"],
                str(r["version"]),
                f"{int(now - r['last_seen'])}s ago",
                "yes" if r["live"] else "no",
            ]
            for r in rows
        ],
    )


def consumers(
    path: Annotated[str, typer.Argument(help="The secret's path.")],
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Show which version of a secret each agent / SDK process holds."""
    from secretsd.ref import secret_path as parse_path

    secret_path = parse_path(path)
    with open_client(addr) as client:
        rows = _holders(client, secret_path)
    if as_json:
        print_json({"path": secret_path, "consumers": rows})
    else:
        _show(rows)


def rotate(
    path: Annotated[str, typer.Argument(help="The secret's path.")],
    pairs: Annotated[
        list[str] | None,
        typer.Argument(help="key=value, key=@file or key=- (merged into the latest version)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every live consumer holds the new version.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait.", min=0.1, max=3600)
    ] = 120.0,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Write a new version of a secret and (with --wait) wait until it has propagated."""
    from secretsd.ref import secret_path as parse_path

    secret_path = parse_path(path)
    values = parse_pairs(pairs or [])
    if not values:
        raise InvalidInput(
            "rotate needs the new values: secretsd rotate <path> key=value|key=@file|key=-"
        )
    with open_client(addr) as client:
        version = client.patch(secret_path, values)
        if not as_json:
            typer.echo(f"wrote {secret_path} version {version}", err=True)
        laggards: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while wait:
            rows = [r for r in _holders(client, secret_path) if r["live"]]
            laggards = [r for r in rows if r["version"] < version]
            if not laggards:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
    result = {
        "path": secret_path,
        "version": version,
        "laggards": [{"consumer": r["consumer"], "version": r["version"]} for r in laggards],
    }
    if as_json:
        print_json(result)
    elif wait and not laggards and is_tty():
        typer.echo(f"every live consumer holds version {version}", err=True)
    if laggards:
        names = ", ".join(f"{r['consumer']} (v{r['version']})" for r in laggards[:20])
        raise Unavailable(
            f"after {timeout:g}s, {len(laggards)} live consumer(s) of {secret_path} still hold "
            f"an older version: {names}"
        )
