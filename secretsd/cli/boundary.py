"""The CLI's one error boundary, shared by the full typer app and the `scan` fast path.

Every command raises our own errors; here they become ``Error: <message>`` on
stderr and the error class's exit code, so users never see a stack trace for
a mistake of theirs. Exit codes: 0 success, 1 internal error, 2 invalid input
or configuration, 3 not found, 4 unauthenticated/forbidden, 5 conflict,
6 unavailable, 130 interrupted.

A command whose optional extra is not installed (``secretsd scan`` without
``secretsd[scan]``, ``serve`` or ``audit verify`` without ``secretsd[server]``)
prints one line naming the extra to install and exits 2, whatever module of
the extra it reached first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from secretsd.errors import SecretsdError

__all__ = ["EXTRAS", "guarded", "missing_extra_hint"]

T = TypeVar("T")

#: Import names of each optional extra's packages (pyproject.toml's
#: [project.optional-dependencies]; tests/test_cli_rough_edges.py keeps them in step).
EXTRAS: dict[str, frozenset[str]] = {
    "server": frozenset(
        {
            "fastapi",
            "starlette",
            "uvicorn",
            "hvac",
            "aiohttp",
            "jwt",
            "kubernetes",
            "limits",
            "sqlalchemy",
            "alembic",
            "psycopg",
            "prometheus_client",
            "orjson",
            "swagger_ui_bundle",
            "python_multipart",  # the web console's forms (FastAPI's Form/UploadFile)
            "cryptography",
        }
    ),
    "scan": frozenset({"git", "gitdb", "hyperscan", "zstandard"}),
}


def missing_extra_hint(error: ImportError) -> str | None:
    """The install hint for an import that failed because an extra is missing, else None."""
    top = (error.name or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return (
                f"this command needs the '{extra}' extra ({top} is not installed): "
                f"pip install 'secretsd[{extra}]' (from a clone: pip install -e '.[{extra}]')"
            )
    return None


def guarded(call: Callable[[], T]) -> T | int:
    """Run ``call``; on our errors print one line and return the exit code instead."""
    try:
        return call()
    except SecretsdError as error:
        print(f"Error: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except ImportError as error:
        hint = missing_extra_hint(error)
        if hint is None:
            raise
        print(f"Error: {hint}", file=sys.stderr)
        return 2
