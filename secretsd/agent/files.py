"""Atomic output files: a reader sees the old file or the new one, never a mix.

The new content goes to a temporary file in the same directory (so the
rename stays on one filesystem), gets its mode and owner *before* it holds
the new bytes' name, is flushed to disk and renamed over the old file with
``os.replace`` (the pattern of pre-commit's ``store.py``). Unchanged content
is not rewritten, so the on-change action only runs for real changes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from secretsd.errors import ConfigError

__all__ = ["prepare_dir", "write_atomic"]


def prepare_dir(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create the output folder {str(directory)!r}: {error.strerror}; mount the "
            "shared volume there or pass --dir"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"the output folder {str(directory)!r} is not writable by this user")
    return directory


def _same(path: Path, content: bytes, mode: int, uid: int | None, gid: int | None) -> bool:
    try:
        info = path.stat()
        if info.st_mode & 0o7777 != mode:
            return False
        if (uid is not None and info.st_uid != uid) or (gid is not None and info.st_gid != gid):
            return False
        return info.st_size == len(content) and path.read_bytes() == content
    except OSError:
        return False


def write_atomic(
    path: Path, content: bytes, *, mode: int = 0o400, uid: int | None = None, gid: int | None = None
) -> bool:
    """Put ``content`` at ``path`` atomically; False when it was already there, unchanged."""
    if _same(path, content, mode, uid, gid):
        return False
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, mode)
        if uid is not None or gid is not None:
            try:
                os.fchown(descriptor, -1 if uid is None else uid, -1 if gid is None else gid)
            except PermissionError:
                raise ConfigError(
                    f"cannot give {path.name} to owner {uid}:{gid}: the agent needs CAP_CHOWN "
                    "or to run as that user"
                ) from None
        with os.fdopen(descriptor, "wb") as stream:
            descriptor = -1
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if descriptor != -1:
            os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True
