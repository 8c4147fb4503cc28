"""Logging set-up for entry points only; library modules just call getLogger(__name__)."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str = "info") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_secretsd", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._secretsd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx/hvac/urllib3 log request lines at INFO/DEBUG; keep them quiet.
    for noisy in ("httpx", "httpcore", "urllib3", "hvac", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
