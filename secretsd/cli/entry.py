"""The ``secretsd`` console script: `secretsd scan` without typer, everything else via main.

``secretsd scan`` runs in pre-commit hooks and CI on every push, where start-up
time is most of the wall time; it is parsed with argparse (``scan_run``) and
gets the same error boundary as every other command (``Error: ...`` on
stderr, the error's exit code, 130 on Ctrl-C). ``--help`` and every other
command go through the typer app in ``main``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["scan"]:
        from secretsd.cli.boundary import guarded
        from secretsd.cli.scan_run import run_fast

        code = guarded(lambda: run_fast(args[1:]))
        if code is not None:  # None: not for the fast path (e.g. --help)
            return code
    if args[:1] == ["agent"]:
        # The agent runs in every pod for its whole life: no typer, no httpx CLI (memory).
        from secretsd.agent.main import run_fast as run_agent
        from secretsd.cli.boundary import guarded

        agent_code = guarded(lambda: run_agent(args[1:]))
        if agent_code is not None:
            return agent_code
    from secretsd.cli.main import main as full

    return full(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
