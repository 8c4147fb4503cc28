"""How commands print: tables for people on a terminal, JSON or plain lines for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

__all__ = ["is_tty", "print_json", "table"]


def is_tty() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def table(columns: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines otherwise."""
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        shown = Table(*columns, box=None, header_style="bold")
        for row in rows:
            shown.add_row(*row)
        Console().print(shown)
        return
    for row in rows:
        typer.echo("\t".join(row))
