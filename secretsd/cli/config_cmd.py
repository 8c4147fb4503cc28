"""``secretsd config show``: the effective settings, secrets redacted."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["app"]

app = typer.Typer(help="Inspect secretsd's configuration.", no_args_is_help=True)


@app.command("show")
def show(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print every setting after flags, environment, config file and defaults (secrets hidden)."""
    settings = settings_from_flags(config, data_dir=data_dir)
    shown = settings.redacted()
    if shown.get("database_url") is None:  # the default: SQLite in the data dir, no secret
        shown["database_url"] = settings.sqlalchemy_url
    if as_json:
        typer.echo(json.dumps(shown, indent=2, sort_keys=True))
        return
    width = max(len(name) for name in shown)
    for name in sorted(shown):
        value = shown[name]
        typer.echo(f"{name.ljust(width)}  {'-' if value is None else value}")
