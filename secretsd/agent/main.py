"""``secretsd agent init|sidecar``: the two modes, callable without typer.

The console script sends ``secretsd agent ...`` here directly (``run_fast``,
argparse), like ``secretsd scan``: a sidecar lives as long as its pod, in
every pod, so its memory matters more than a shared CLI parser. The typer
commands (``secretsd.cli.agent_cmd``) call the same two functions and give
``secretsd --help`` its listing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

__all__ = ["init", "run_fast", "sidecar"]


def _agent(annotations: Path | None, config: Path | None, directory: Path | None) -> object:
    from secretsd.agent.config import DEFAULT_ANNOTATIONS, DEFAULT_DIR
    from secretsd.agent.reload import ConfigSource
    from secretsd.agent.report import Reporter
    from secretsd.agent.runner import Agent, client_settings
    from secretsd.client import Client

    source = ConfigSource(annotations, config, default_annotations=DEFAULT_ANNOTATIONS)
    settings = source.load()
    # The agent reports as an agent (below), not as an SDK process too.
    client = Client(settings=client_settings(settings), report_versions=False)
    reporter = Reporter(client)
    return Agent(
        settings,
        directory or settings.dir or DEFAULT_DIR,
        client,
        on_rendered=reporter.report,
        source=source,  # the sidecar follows annotation changes
    )


def init(annotations: Path | None, config: Path | None, directory: Path | None) -> None:
    """Log in, render every configured file once; errors raise (one line at the boundary)."""
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


def sidecar(annotations: Path | None, config: Path | None, directory: Path | None) -> None:
    """Keep the files current until SIGTERM/SIGINT."""
    from secretsd.agent.runner import Agent

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s secretsd-agent %(levelname)s %(message)s"
    )
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


def run_fast(argv: list[str]) -> int | None:
    """``secretsd agent`` without typer; None for anything else (``--help``: the typer app)."""
    if not argv or argv[0] not in ("init", "sidecar") or {"-h", "--help"} & set(argv):
        return None
    parser = argparse.ArgumentParser(prog=f"secretsd agent {argv[0]}")
    parser.add_argument("--annotations", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--dir", type=Path, dest="directory")
    options = parser.parse_args(argv[1:])
    # httpx imports its own command line (rich, click: about 10 MB) when present; the
    # agent never uses it. A None entry makes that optional import fail, as designed.
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    mode = init if argv[0] == "init" else sidecar
    mode(options.annotations, options.config, options.directory)
    return 0
