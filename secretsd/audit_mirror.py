"""The audit mirror: a JSON Lines copy of every record, in a file or on stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from secretsd.fsutil import append_whole, open_private_append

__all__ = ["AuditMirror"]


class AuditMirror:
    """The optional JSON Lines copy of every record (``SECRETSD_AUDIT_FILE``; ``-`` is stdout).

    A write that fails (``ENOSPC``) leaves the file as it was (see
    :func:`append_whole`) and keeps the rows as a backlog, written first next
    time, so the mirror stays complete and in order once the disk has room.
    """

    def __init__(self, target: str) -> None:
        self._target = target
        self._fd: int | None = None
        self.backlog = b""

    def open(self) -> None:
        if self._target != "-":
            self._fd = open_private_append(Path(self._target))

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        data = self.backlog + b"".join(orjson.dumps(row) + b"\n" for row in rows)
        try:
            if self._fd is None:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            else:
                append_whole(self._fd, data)
        except (OSError, ValueError):
            self.backlog = data
            raise
        self.backlog = b""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
