"""The working tree: every file under a directory, as git would see it.

Inside a git work tree the file list comes from ``git ls-files --cached
--others --exclude-standard`` (so ``.gitignore`` is respected exactly as git
does); elsewhere from a walk that never follows symbolic links (a symlink
loop cannot hang the scan). Binary files (a NUL byte in the first 8 KiB) and
files over the size limit are skipped and counted, never crashed on.
Vendored directories (``lib/pythonX.Y/``, ``node_modules/``) are *not*
skipped silently: hiding findings is worse than a slower scan, and a team
that wants them out says so with a path allowlist.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from secretsd.scanners.model import Fragment

from secretsd.errors import InvalidInput

__all__ = ["SkipStats", "TreeSource", "find_git_root"]

_SNIFF = 8192


@dataclass
class SkipStats:
    """What a source did not scan, and why (reported in the stats)."""

    files: int = 0
    bytes: int = 0
    binary: int = 0
    too_large: int = 0
    symlinks: int = 0
    unreadable: int = 0
    allowlisted: int = 0
    skipped_paths: list[str] = field(default_factory=list)

    def add(self, other: SkipStats) -> None:
        """Count in what another worker skipped (a forked tree scan's share)."""
        for counter in fields(self):  # counts add up, skipped path lists join
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


def find_git_root(start: Path) -> Path | None:
    """The enclosing work tree's top directory, found without starting git (cheap)."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


class TreeSource:
    """Files under ``root``, paths reported relative to ``root`` with ``/`` separators."""

    def __init__(
        self,
        root: Path,
        *,
        max_file_size: int,
        stats: SkipStats,
        path_allowed: Callable[[str], bool] | None = None,
        use_git: bool = True,
    ) -> None:
        if not root.exists():
            raise InvalidInput(f"{str(root)!r} does not exist; give a directory or file to scan")
        self.root = root
        self.max_file_size = max_file_size
        self.stats = stats
        self.path_allowed = path_allowed
        self.use_git = use_git

    def _git_paths(self) -> list[str] | None:
        if not self.use_git or self.root.is_file() or find_git_root(self.root) is None:
            return None
        import git

        runner = git.Git(str(self.root))
        try:
            runner.check_ignore("-q", ".")
        except git.GitCommandError as error:
            if error.status != 1:  # 1 = not ignored; anything else: not a usable work tree
                return None
        else:
            return None  # the user asked for an ignored directory by name: scan all of it
        try:
            output = runner.ls_files("-z", "--cached", "--others", "--exclude-standard")
        except git.GitCommandError:
            return None  # not really a work tree (bare, broken): fall back to walking
        return sorted(set(p for p in output.split("\0") if p))

    def _walk_paths(self) -> Iterator[str]:
        if self.root.is_file():
            yield self.root.name
            return
        for directory, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            rel = os.path.relpath(directory, self.root)
            for name in sorted(files):
                yield name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")

    def paths(self) -> Iterator[str]:
        git_paths = self._git_paths()
        yield from git_paths if git_paths is not None else self._walk_paths()

    def _read(self, full: str, rel: str) -> bytes | None:
        stats = self.stats
        try:
            info = os.lstat(full)
        except OSError:
            stats.unreadable += 1
            return None
        if stat.S_ISLNK(info.st_mode):
            stats.symlinks += 1
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > self.max_file_size:
            stats.too_large += 1
            stats.skipped_paths.append(rel)
            return None
        limit = self.max_file_size + 1
        try:
            with open(full, "rb") as handle:
                # Sized from the stat: ``read(limit)`` would allocate the whole limit (1 MB)
                # for every small file. A file that grew since is read on up to the limit.
                data = handle.read(min(info.st_size + 1, limit))
                if info.st_size < len(data) < limit:
                    data += handle.read(limit - len(data))
        except OSError:
            stats.unreadable += 1
            stats.skipped_paths.append(rel)
            return None
        if len(data) > self.max_file_size:
            stats.too_large += 1
            return None
        if b"\0" in data[:_SNIFF]:
            stats.binary += 1
            return None
        return data

    def fragments(self, paths: Iterable[str] | None = None) -> Iterator[Fragment]:
        """The scannable files, in path order; ``paths``: only these (a worker's share)."""
        allowed = self.path_allowed
        single = self.root.is_file()
        root = str(self.root)
        for rel in self.paths() if paths is None else paths:
            if allowed is not None and not allowed(rel):
                self.stats.allowlisted += 1
                continue
            data = self._read(root if single else os.path.join(root, rel), rel)
            if data is None:
                continue
            self.stats.files += 1
            self.stats.bytes += len(data)
            yield Fragment(rel, data)
