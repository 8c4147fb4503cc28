"""The scanner's on-disk cache: work derived from the bundled rules, kept between runs.

A scan's fixed cost (before the first byte is matched) is what a pre-commit hook's user
waits for on every commit. Compiling the Hyperscan database and parsing the rules TOML
are most of it and depend only on the rules' text, so both are stored under a name
derived from that text (a changed rules file gets a new name, never a stale entry).
Every entry is rebuilt when missing or unreadable; a read-only home only costs time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$SECRETSD_SCAN_CACHE``, else the platform's user cache folder."""
    override = os.environ.get("SECRETSD_SCAN_CACHE")
    if override:
        return Path(override)
    if sys.platform.startswith("linux"):  # XDG, without importing platformdirs (hook latency)
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return Path(base) / "secretsd" / "scan"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("secretsd")) / "scan"


def store(path: Path, data: bytes) -> None:
    """Write an entry atomically (a concurrent reader sees the old entry or the new one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as error:  # a read-only home must not break scanning
        log.debug("cannot cache %s: %s", path.name, error)
