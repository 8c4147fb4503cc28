"""``secretsd agent init|sidecar``: render secrets into files for a pod (or any host)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
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


def _agent(annotations: Path | None, config: Path | None, directory: Path | None) -> object:
    from secretsd.agent.config import DEFAULT_ANNOTATIONS, DEFAULT_DIR, load_config
    from secretsd.agent.report import Reporter
    from secretsd.agent.runner import Agent, client_settings
    from secretsd.client import Client

    settings = load_config(annotations, config, default_annotations=DEFAULT_ANNOTATIONS)
    client = Client(settings=client_settings(settings))
    reporter = Reporter(client)
    return Agent(
        settings,
        directory or settings.dir or DEFAULT_DIR,
        client,
        on_rendered=reporter.report,
    )


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s secretsd-agent %(levelname)s %(message)s"
    )


@app.command("init")
def init(
    annotations: AnnotationsOption = None,
    config: ConfigOption = None,
    directory: DirOption = None,
) -> None:
    """Log in, render every configured file once, exit 0 (non-zero naming what is missing)."""
    from secretsd.agent.runner import Agent

    agent = _agent(annotations, config, directory)
    assert isinstance(agent, Agent)
    try:
        changed = agent.render_all()
    finally:
        agent.client.close()
    print(
        f"secretsd agent: rendered {len(agent.config.outputs)} file(s) in {agent.directory} "
        f"({len(changed)} changed)",
        file=sys.stderr,
    )


@app.command("sidecar")
def sidecar(
    annotations: AnnotationsOption = None,
    config: ConfigOption = None,
    directory: DirOption = None,
) -> None:
    """Keep the files current (long-poll), run the on-change action; stop on SIGTERM."""
    from secretsd.agent.runner import Agent

    _logging()
    agent = _agent(annotations, config, directory)
    assert isinstance(agent, Agent)
    if agent.config.init_only:
        print("secretsd agent: init-only is set; the sidecar has nothing to do", file=sys.stderr)
        return

    def stop(number: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run_sidecar()
    finally:
        agent.close()
        agent.client.close()
