"""``secretsd doctor``: report insecure settings of a deployment and its data dir."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["doctor"]

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def doctor(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    addr: Annotated[
        str | None,
        typer.Option(
            "--addr",
            help="The running server to ask (default: from the settings).",
            show_default=False,
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not contact the server or Vault.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Check file modes, TLS, Vault, proxy trust and where secrets live; exit 1 on a problem.

    Reads the same settings as `serve` (flags, SECRETSD_*, --config). Problems
    (FAIL) expose secrets or the audit trail; warnings (WARN) are risks to
    review. Nothing is changed.
    """
    from secretsd.doctor import run_checks

    settings = settings_from_flags(config, data_dir=data_dir)
    findings = run_checks(
        settings, config_file=config, addr=addr, running=not offline, vault=not offline
    )
    failed = any(f.status == "fail" for f in findings)
    if as_json:
        typer.echo(
            json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2)
        )
    else:
        for finding in findings:
            typer.echo(f"{_MARK[finding.status]}  {finding.check}: {finding.detail}")
            if finding.fix and finding.status != "ok":
                typer.echo(f"      fix: {finding.fix}")
        problems = sum(f.status == "fail" for f in findings)
        warnings = sum(f.status == "warn" for f in findings)
        typer.echo(f"{problems} problem(s), {warnings} warning(s).")
    if failed:
        raise typer.Exit(1)
