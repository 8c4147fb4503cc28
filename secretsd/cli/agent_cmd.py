"""``secretsd agent init|sidecar``: render secrets into files for a pod (or any host).

The console script runs these without typer (``secretsd.agent.main.run_fast``); this
module gives ``secretsd --help`` and ``secretsd agent --help`` their text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Render secrets into files: once (init container) or kept current (sidecar).",
    no_args_is_help=True,
)

AnnotationsOption = Annotated[
    Path | None,
    typer.Option(
        "--annotations",
        help="Downward-API annotations file (default /etc/podinfo/annotations, if present).",
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Agent settings as YAML (files, role, on_change).")
]
DirOption = Annotated[Path | None, typer.Option("--dir", help="Output folder (default /secretsd).")]


@app.command("init")
def init(
    annotations: AnnotationsOption = None,
    config: ConfigOption = None,
    directory: DirOption = None,
) -> None:
    """Log in, render every configured file once, exit 0 (non-zero naming what is missing)."""
    from secretsd.agent.main import init as run

    run(annotations, config, directory)


@app.command("sidecar")
def sidecar(
    annotations: AnnotationsOption = None,
    config: ConfigOption = None,
    directory: DirOption = None,
) -> None:
    """Keep the files current (long-poll), run the on-change action; stop on SIGTERM."""
    from secretsd.agent.main import sidecar as run

    run(annotations, config, directory)
