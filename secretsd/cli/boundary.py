"""The CLI's one error boundary, shared by the full typer app and the `scan` fast path.

Every command raises our own errors; here they become ``Error: <message>`` on
stderr and the error class's exit code, so users never see a stack trace for
a mistake of theirs. Exit codes: 0 success, 1 internal error, 2 invalid input
or configuration, 3 not found, 4 unauthenticated/forbidden, 5 conflict,
6 unavailable, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from secretsd.errors import SecretsdError

__all__ = ["guarded"]

T = TypeVar("T")


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
