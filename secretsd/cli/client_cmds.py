"""``secretsd get | put | ls | rm | versions | export``: the SDK from a shell.

Output: a value's exact bytes for ``get`` (scripts: ``$(secretsd get ...)``),
tables on a terminal, JSON with ``--json``. Values never have to be typed on
the command line: ``put`` takes ``key=@file`` and ``key=-`` (stdin).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from secretsd.backends.base import secret_to_json
from secretsd.cli.exposure import looks_secret
from secretsd.cli.output import is_tty, print_json, table
from secretsd.errors import InvalidInput
from secretsd.ref import (
    Reference,
    is_reference,
    near_miss_reference,
    parse_reference,
    secret_path,
    validate_key,
    validate_path,
)

if TYPE_CHECKING:
    from secretsd.client import Client

__all__ = [
    "AddrOption",
    "JsonOption",
    "export",
    "get",
    "ls",
    "open_client",
    "put",
    "rm",
    "undelete",
    "versions",
]

AddrOption = Annotated[
    str | None,
    typer.Option(
        "--addr",
        help="secretsd's address (default: SECRETSD_ADDR, else the login's).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def open_client(addr: str | None, **options: Any) -> Client:
    """A Client for one command: no token lookup round trip, a short retry window.

    One-shot commands do not report the versions they read (``report_versions``):
    the process is gone a moment later, and a report would stay "live" for
    minutes, making ``rotate --wait`` wait for it. ``secretsd run`` reports.
    """
    from secretsd.client import Client, Retry

    options.setdefault("auto_renew", False)
    options.setdefault("report_versions", False)
    options.setdefault("retry", Retry(attempts=4))  # ~0.7 s of backoff, then the error
    return Client(addr, **options)


def _target(text: str) -> Reference:
    """A reference, or a bare path meaning the whole secret (a misspelt scheme is refused,
    a reference typed without one gets a hint)."""
    if is_reference(text) or near_miss_reference(text) is not None:
        return parse_reference(text)
    return Reference(validate_path(text))


def get(
    ref: Annotated[
        str,
        typer.Argument(help="secretsd://path[?version=n]#key (one value) or a path (whole map)."),
    ],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Read this version.", min=1)
    ] = None,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Print a value's exact bytes (or a whole secret as JSON)."""
    target = _target(ref)
    if version is not None and target.version is not None and version != target.version:
        raise InvalidInput(f"--version {version} contradicts the reference's version")
    wanted = version or target.version
    with open_client(addr) as client:
        if target.key is None:
            secret = client.read(target.path, wanted)
            print_json(secret_to_json(secret) if as_json else dict(secret.data))
            return
        # NotFound names the keys there are; the read for --json is served from the cache.
        raw = client.get_bytes(Reference(target.path, target.key, wanted))
        if as_json:
            secret = client.read(target.path, wanted)
            binary = target.key in secret.binary_keys
            print_json(
                {
                    "path": secret.path,
                    "version": secret.version,
                    "key": target.key,
                    "value": secret.data[target.key],
                    "encoding": "base64" if binary else "utf-8",
                }
            )
            return
    out = sys.stdout.buffer
    out.write(raw)
    if is_tty() and not raw.endswith(b"\n"):
        out.write(b"\n")  # only for eyes; pipes get the exact bytes
    out.flush()


def _read_value(key: str, source: str, stdin_used: list[bool]) -> str | bytes:
    if source == "-":
        if stdin_used:
            raise InvalidInput("only one key can read its value from stdin ('-')")
        stdin_used.append(True)
        if sys.stdin.isatty():  # typed by a person: ask without echoing it
            return str(typer.prompt(f"Value of {key}", hide_input=True, err=True))
        return sys.stdin.buffer.read()
    if source.startswith("@"):
        path = Path(source[1:]).expanduser()
        try:
            return path.read_bytes()
        except OSError as error:
            raise InvalidInput(
                f"cannot read the value of {key!r} from {str(path)!r}: {error.strerror}"
            ) from None
    return source


def parse_pairs(pairs: list[str]) -> dict[str, str | bytes]:
    """``key=value``, ``key=@file`` (the file's bytes), ``key=-`` (stdin's bytes, or a hidden
    prompt on a terminal)."""
    if not pairs:
        raise InvalidInput("give at least one key=value, key=@file or key=- (stdin)")
    values: dict[str, str | bytes] = {}
    stdin_used: list[bool] = []
    for pair in pairs:
        key, sep, source = pair.partition("=")
        if not sep:
            # Never echo it: it may be a value typed without its key.
            raise InvalidInput("each argument after the path is key=value, key=@file or key=-")
        validate_key(key)
        if key in values:
            raise InvalidInput(f"the key {key!r} is given twice")
        values[key] = _read_value(key, source, stdin_used)
        typed = source != "-" and not source.startswith("@")
        if typed and looks_secret(key, source):
            typer.echo(
                f"secretsd put: warning: the value of {key!r} was typed on the command line, "
                f"where other users can read it (ps) and shell history keeps it; next time "
                f"use {key}=- (stdin, asked without echo) or {key}=@FILE",
                err=True,
            )
    return values


def put(
    path: Annotated[str, typer.Argument(help="The secret's path (or secretsd://path).")],
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            help="key=value, key=@file (exact bytes) or key=- (stdin).", show_default=False
        ),
    ] = None,
    cas: Annotated[
        int | None,
        typer.Option(
            "--cas", help="Write only if the current version is this (0: create only).", min=0
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge the keys into the latest version (PATCH).")
    ] = False,
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Write a new version of a secret."""
    target = secret_path(path)
    values = parse_pairs(pairs or [])
    with open_client(addr) as client:
        if merge:
            version = client.patch(target, values, cas=cas)
        else:
            version = client.put(target, values, cas=cas)
    if as_json:
        print_json({"path": target, "version": version})
    else:
        typer.echo(f"wrote {target} version {version}")


def ls(
    prefix: Annotated[str, typer.Argument(help="A folder (default: the top).")] = "",
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """List the secrets and folders (ending in '/') under a prefix."""
    with open_client(addr) as client:
        keys = client.list(prefix)
    if as_json:
        print_json({"keys": keys})
        return
    for key in keys:
        typer.echo(key)


def _version_list(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        versions = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise InvalidInput("--versions is a comma-separated list, e.g. --versions 1,2") from None
    if not versions or any(v < 1 for v in versions):
        raise InvalidInput("--versions are positive integers, e.g. --versions 1,2")
    return versions


def rm(
    path: Annotated[str, typer.Argument(help="The secret's path.")],
    versions: Annotated[
        str | None,
        typer.Option("--versions", help="Comma-separated versions (default: the latest)."),
    ] = None,
    destroy: Annotated[
        bool, typer.Option("--destroy", help="Remove the data for good (no undelete).")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete the secret entirely: all versions and metadata.")
    ] = False,
    addr: AddrOption = None,
) -> None:
    """Delete the latest version (`secretsd undelete` restores it), given versions, or the
    whole secret."""
    target = secret_path(path)
    chosen = _version_list(versions)
    if everything and (chosen or destroy):
        raise InvalidInput("--all removes every version; it takes no --versions or --destroy")
    with open_client(addr) as client:
        if everything:
            client.delete_all(target)
            typer.echo(f"deleted {target} and all its versions", err=True)
        elif destroy:
            if chosen is None:
                chosen = [client.metadata(target).current_version]
            client.destroy(target, chosen)
            typer.echo(f"destroyed {target} versions {_join(chosen)}", err=True)
        else:
            client.delete(target, chosen)
            which = f"versions {_join(chosen)}" if chosen else "the latest version"
            typer.echo(f"deleted {which} of {target}", err=True)


def undelete(
    path: Annotated[str, typer.Argument(help="The secret's path.")],
    versions: Annotated[
        str | None,
        typer.Option("--versions", help="Comma-separated versions (default: the latest)."),
    ] = None,
    addr: AddrOption = None,
) -> None:
    """Restore soft-deleted versions (not destroyed ones): the latest, or the given ones."""
    target = secret_path(path)
    chosen = _version_list(versions)
    with open_client(addr) as client:
        if chosen is None:
            meta = client.metadata(target)
            latest = meta.version_info(meta.current_version)
            if latest is None or not latest.deleted:
                deleted = [str(v.version) for v in meta.versions if v.deleted]
                state = "destroyed" if latest is not None and latest.destroyed else "not deleted"
                raise InvalidInput(
                    f"the latest version of {target} ({meta.current_version}) is {state}; "
                    + (
                        f"restore others with --versions {','.join(deleted)}"
                        if deleted
                        else "no version is deleted"
                    )
                )
            chosen = [latest.version]
        client.undelete(target, chosen)
    typer.echo(f"restored {target} versions {_join(chosen)}", err=True)


def _join(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def versions(
    path: Annotated[str, typer.Argument(help="The secret's path.")],
    as_json: JsonOption = False,
    addr: AddrOption = None,
) -> None:
    """Show every version of a secret: created, deleted, destroyed."""
    with open_client(addr) as client:
        meta = client.metadata(secret_path(path))
    if as_json:
        print_json(
            {
                "path": meta.path,
                "current_version": meta.current_version,
                "custom_metadata": dict(meta.custom_metadata),
                "binary_keys": sorted(meta.binary_keys),
                "versions": [
                    {
                        "version": v.version,
                        "created_time": v.created_time,
                        "deletion_time": v.deletion_time,
                        "destroyed": v.destroyed,
                    }
                    for v in meta.versions
                ],
            }
        )
        return
    rows = []
    for info in meta.versions:
        state = "destroyed" if info.destroyed else "deleted" if info.deleted else "live"
        current = "*" if info.version == meta.current_version else ""
        rows.append([f"{info.version}{current}", state, info.created_time, info.deletion_time])
    table(["VERSION", "STATE", "CREATED", "DELETED"], rows)


def export(
    refs: Annotated[
        list[str],
        typer.Argument(help="Paths or references (secretsd://path for all keys, #key for one)."),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="dotenv, json or yaml.", case_sensitive=False)
    ] = "dotenv",
    addr: AddrOption = None,
) -> None:
    """Print secrets as a dotenv file (shell-quoted), JSON or YAML."""
    fmt = fmt.lower()
    if fmt not in ("dotenv", "json", "yaml"):
        raise InvalidInput(f"--format is dotenv, json or yaml, not {fmt!r}")
    targets = [str(_target(text)) for text in refs]
    with open_client(addr) as client:
        results = client.resolve(targets)
    merged: dict[str, str] = {}
    binary: set[str] = set()
    for result in results:
        if result.value is not None:
            ref = parse_reference(result.ref)
            assert ref.key is not None
            items = {ref.key: result.value}
            if result.binary:
                binary.add(ref.key)
        else:
            items = dict(result.data or {})
            binary |= {k for k in result.binary_keys if k in items}
        for key, value in items.items():
            if key in merged and merged[key] != value:
                raise InvalidInput(f"the key {key!r} has different values in the given secrets")
            merged[key] = value
    if fmt == "dotenv":
        if binary:
            raise InvalidInput(
                f"{', '.join(sorted(binary))}: binary values cannot go in a dotenv file; "
                "use --format json or yaml (base64) or `secretsd get` for the bytes"
            )
        from secretsd.cli.dotenv import format_dotenv

        sys.stdout.write(format_dotenv(merged))
    elif fmt == "json":
        print_json(merged)
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(merged, default_flow_style=False, sort_keys=True))
    if binary:
        typer.echo(f"note: {', '.join(sorted(binary))} are base64 (binary values)", err=True)
