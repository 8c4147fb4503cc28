"""One ``secretsd serve`` per data dir: a lock file that names the one running.

Two servers on one embedded data dir would share OpenBao's Raft storage and
SQLite; the second used to fail deep inside OpenBao ("bolt file: timeout").
``serve`` now takes an exclusive ``flock`` on ``<data-dir>/secretsd.lock``
before touching anything, and writes its pid and address into it. A second
``serve`` finds the lock held, reads who holds it and stops with that, having
changed nothing. The kernel drops the lock when the holder exits, however it
exits, so a crash never leaves a stale lock behind (the file may stay; only
the lock counts).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from secretsd.errors import Conflict
from secretsd.fsutil import ensure_private_dir

__all__ = ["LOCK_NAME", "hold_data_dir"]

LOCK_NAME = "secretsd.lock"


def _holder(fd: int) -> str:
    """``pid N, ADDR`` of the lock's holder, as far as it wrote it."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw)
        return f"pid {int(info['pid'])}, {str(info['addr'])[:200]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is still starting"


@contextlib.contextmanager
def hold_data_dir(data_dir: Path, addr: str) -> Iterator[Path]:
    """Hold the data dir's lock while the block runs; Conflict if another serve holds it."""
    ensure_private_dir(data_dir)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"secretsd already runs on the data dir {data_dir} ({_holder(fd)}); "
                "use that one, stop it first, or start this one with another --data-dir "
                "(SECRETSD_DATA_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "addr": addr}).encode() + b"\n", 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
