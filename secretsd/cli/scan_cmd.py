"""``secretsd scan``: the typer command (help text, registration in the app).

The work happens in ``scan_run.py``, which ``secretsd scan`` reaches without
importing typer at all (see ``entry.py``); this module only exists so the
command shows up in ``secretsd --help`` with its options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from secretsd.cli.scan_run import execute, fast_parser, run_fast

__all__ = ["fast_parser", "run_fast", "scan"]


def scan(
    path: Annotated[Path, typer.Argument(help="Directory, file or repository to scan.")] = Path(
        "."
    ),
    staged: Annotated[
        bool, typer.Option("--staged", help="Scan what `git commit` would record.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", metavar="REV", help="Scan the commits in REV..HEAD.")
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Scan every commit of every branch.")
    ] = False,
    image: Annotated[
        Path | None,
        typer.Option(
            "--image",
            help="Scan a container image: a docker-save archive, an OCI archive or layout dir.",
        ),
    ] = None,
    confidence: Annotated[
        str | None,
        typer.Option(
            "--confidence",
            help="Report findings of at least this confidence: low, medium (default) or high.",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or sarif.")] = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Scan config (default: .secretsd-scan.toml).")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Only report findings not in this baseline.")
    ] = None,
    write_baseline: Annotated[
        Path | None, typer.Option("--write-baseline", help="Accept today's findings into FILE.")
    ] = None,
    max_file_size: Annotated[
        int | None, typer.Option("--max-file-size", help="Skip files over this many bytes.")
    ] = None,
    tests: Annotated[
        bool | None,
        typer.Option(
            "--tests/--no-tests", help="Report credentials under test paths.", show_default=False
        ),
    ] = None,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print secrets in full (default: redacted).")
    ] = False,
    install_hook: Annotated[
        bool,
        typer.Option("--install-hook", help="Install a git pre-commit hook in this repository."),
    ] = False,
    managed: Annotated[
        bool,
        typer.Option(
            "--managed", help="Also flag any value stored in secretsd (needs credentials)."
        ),
    ] = False,
    fix: Annotated[
        bool, typer.Option("--fix", help="Move found values into secretsd and reference them.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --fix: show the diff only.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --fix: do not ask.")] = False,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="Print the rule ids and exit.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Processes for a tree scan (default: one per CPU, at most 4).",
            show_default=False,
        ),
    ] = None,
    matcher: Annotated[str, typer.Option("--matcher", hidden=True)] = "auto",
) -> None:
    """Find plaintext credentials. Exit 0 clean, 1 findings, 2 error."""
    raise typer.Exit(
        execute(
            path=path,
            staged=staged,
            since=since,
            history=history,
            image=image,
            confidence=confidence,
            fmt=fmt,
            output=output,
            config=config,
            baseline=baseline,
            write_baseline=write_baseline,
            max_file_size=max_file_size,
            tests=tests,
            show_secrets=show_secrets,
            install_hook=install_hook,
            managed=managed,
            fix=fix,
            dry_run=dry_run,
            yes=yes,
            list_rules=list_rules,
            matcher=matcher,
            jobs=jobs,
        )
    )
