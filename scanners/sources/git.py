"""Git sources: staged changes, a commit range, and the whole history, as diff streams.

All three read one ``git log -p`` / ``git diff --cached`` stream through
gitpython (never a checkout per commit) and scan it in large chunks: git marks
each added line with a blank instead of ``+`` (``--output-indicator-new``, git
2.25+; with ``-U0`` there are no context lines to confuse them with), so a
chunk of many commits is matched in one pass as it arrives, without a copy,
and only a hit is mapped back to its commit, file and line by looking
backwards for the nearest headers. Hits on
removed lines and headers map to nothing and are dropped. Only added lines
count: a commit that deletes a secret does not report it again, and the
commit that added it does: the scan keeps, for each secret and path, the
oldest commit that adds it (the commit that introduced it). git runs
newest-first so its output streams while the scan runs.

Producing the patches is most of a history scan's time (``git log -p`` is
single-threaded), so a long history is split by ``git rev-list`` into
contiguous groups of commits, one ``git log --stdin --no-walk`` per CPU, read
concurrently; commit order (for "oldest sighting") comes from the rev-list.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Queue
from typing import Any

from secretsd.scanners.model import (
    DIFF_HEADER,
    CommitInfo,
    Fragment,
    Location,
    unquote_git_path,
)

from secretsd.errors import InvalidInput, SecretsdError

__all__ = ["DiffSource", "open_repo"]

_RECORD = b"\x1e"
_FIELD = b"\x1f"
_FORMAT = "--format=%x1e%H%x1f%an%x1f%ae%x1f%aI"
#: An added line starts with this byte (the ``--output-indicator-new`` below).
_ADDED = b" "
_DIFF_OPTS = (
    "-p",
    "-U0",
    "--no-color",
    "--no-ext-diff",
    "--no-prefix",
    "--no-textconv",
    # Which of several equal lines a hunk calls added is all the indent heuristic decides: it
    # never changes what was added, and costs a tenth of git's time on a long history.
    "--no-indent-heuristic",
    # A rule that wants whitespace or a line start before a key sees it on added lines.
    "--output-indicator-new= ",
)
_HUNK = re.compile(rb"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_CHUNK = 1 << 20
#: Larger files are not read whole for a hunk's context (a tree scan skips them too).
_MAX_FILE = 4 << 20
#: Below this many commits one git process is quicker than splitting the work.
_PARALLEL_MIN_COMMITS = 64


def _workers() -> int:
    """How many ``git log`` processes a long history is split over: one per CPU, at most 4."""
    import os

    return min(os.cpu_count() or 1, 4)


def open_repo(path: Path) -> Any:
    """A gitpython ``Repo`` for ``path`` or a clear error (exit 2) when it is not one."""
    import git

    try:
        repo = git.Repo(str(path), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise InvalidInput(
            f"{str(path)!r} is not inside a git repository; run the scan from a repository "
            "or drop --staged/--since/--history to scan files"
        ) from None
    if repo.bare:
        raise InvalidInput(f"{str(path)!r} is a bare repository; scan a clone with a work tree")
    try:
        repo.git.rev_parse("--git-dir")
    except git.GitCommandError as error:
        raise InvalidInput(
            f"{str(path)!r} is a broken git repository: {_first_line(error)}"
        ) from None
    return repo


def _first_line(error: Any) -> str:
    text = (getattr(error, "stderr", "") or str(error)).strip()
    text = text.removeprefix("stderr:").strip().strip("'").strip()
    return text.splitlines()[0] if text else "git failed"


class _Chunk:
    """Maps offsets of one stream chunk back to commit, path and line (cached per header)."""

    def __init__(self, original: bytes, default_commit: CommitInfo | None) -> None:
        self.original = original
        self.default_commit = default_commit
        self._commits: dict[int, CommitInfo] = {}
        self._paths: dict[int, str | None] = {}

    def _commit(self, offset: int) -> CommitInfo | None:
        start = self.original.rfind(_RECORD, 0, offset)
        if start < 0:
            return self.default_commit
        cached = self._commits.get(start)
        if cached is None:
            end = self.original.find(b"\n", start)
            fields = self.original[start + 1 : end].decode("utf-8", "replace").split("\x1f")
            fields += [""] * (4 - len(fields))
            cached = CommitInfo(fields[0], fields[1], fields[2], fields[3])
            self._commits[start] = cached
        return cached

    def _path(self, header: int, hunk: int) -> str | None:
        if header in self._paths:
            return self._paths[header]
        data = self.original
        plus = data.find(b"\n+++ ", header, hunk)
        path: str | None = None
        if plus >= 0:
            end = data.find(b"\n", plus + 1)
            raw = data[plus + 5 : end].rstrip(b"\r")
            if raw != b"/dev/null":
                path = unquote_git_path(raw.split(b"\t")[0])
        self._paths[header] = path
        return path

    def locate(self, offset: int) -> Location | None:
        data = self.original
        line_start = data.rfind(b"\n", 0, offset) + 1
        if data[line_start : line_start + 1] != _ADDED:
            return None
        hunk = data.rfind(b"\n@@ ", 0, line_start)
        header = data.rfind(DIFF_HEADER, 0, line_start)
        if hunk < 0 or header < 0 or hunk < header:
            return None  # a header line, not content
        if data.rfind(_RECORD, 0, line_start) > hunk:
            return None
        match = _HUNK.match(data, hunk + 1)
        if match is None:
            return None
        path = self._path(header, hunk)
        if path is None:
            return None
        hunk_end = data.find(b"\n", hunk + 1)
        added = b"\n" + _ADDED
        before = data.count(added, hunk_end, line_start - 1) if line_start - 1 > hunk_end else 0
        return Location(path, int(match.group(1)) + before, self._commit(offset))


class DiffSource:
    """A diff stream from git, scanned in chunks of whole commits.

    ``kind`` is ``staged`` (``git diff --cached``), ``range`` (``git log REV..HEAD``)
    or ``history`` (``git log --all``).
    """

    def __init__(
        self,
        repo: Any,
        kind: str,
        *,
        since: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.repo = repo
        self.kind = kind
        self.since = since
        self.progress = progress
        self.bytes = 0
        self.commits = 0
        self.order: dict[str, int] = {}
        self._queue: Queue[bytes | BaseException | None] = Queue(maxsize=8)
        self._reader: threading.Thread | None = None
        self._readers: list[threading.Thread] = []
        if kind == "range":
            self._verify(since or "")

    def _verify(self, rev: str) -> None:
        import git

        try:
            self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        except git.GitCommandError:
            raise InvalidInput(
                f"--since {rev!r}: no such commit in {self.repo.working_dir!r}; give a branch, "
                "tag or commit id (in CI, fetch enough history, e.g. `git fetch origin main`)"
            ) from None

    def count_commits(self) -> int:
        """How many commits the stream will show (for a progress bar)."""
        if self.kind == "staged":
            return 0
        args = ["--all"] if self.kind == "history" else [f"{self.since}..HEAD"]
        try:
            return int(self.repo.git.rev_list("--count", *args))
        except Exception:
            return 0

    def _revs(self) -> list[str]:
        return ["--all"] if self.kind == "history" else [f"{self.since}..HEAD"]

    def _groups(self) -> list[list[str]] | None:
        """Contiguous groups of commits for parallel ``git log`` runs, or None for one run.

        Also records each commit's age from the rev-list (newest first), which
        the scan uses to keep the oldest sighting of a secret.
        """
        workers = _workers()
        if workers < 2:
            return None
        try:
            shas = self.repo.git.rev_list(*self._revs()).split()
        except Exception:
            return None  # the single `git log` reports the problem clearly
        if len(shas) < _PARALLEL_MIN_COMMITS:
            return None
        for index, sha in enumerate(shas):
            self.order[sha] = -index - 1
        size = -(-len(shas) // workers)
        return [shas[i : i + size] for i in range(0, len(shas), size)]

    def _spawn_for(self, shas: list[str]) -> Any:
        """``git log`` of exactly these commits (each against its first parent)."""
        import subprocess

        command = [
            "git", "-c", "core.quotePath=false", "log", "--stdin", "--no-walk=unsorted",
            _FORMAT, *_DIFF_OPTS, "--no-renames", "--diff-filter=d",
        ]  # fmt: skip
        proc = self.repo.git.execute(command, as_process=True, istream=subprocess.PIPE)
        # git reads all of --stdin before it writes anything, so this cannot deadlock.
        proc.proc.stdin.write(("\n".join(shas) + "\n").encode("ascii"))
        proc.proc.stdin.close()
        return proc

    def _spawn(self) -> Any:
        import git

        if self.kind == "staged":
            command = ["diff", "--cached", *_DIFF_OPTS[1:], "--diff-filter=ACMRT"]
        else:
            # Newest first, so git streams at once and the scan overlaps with it; the
            # scan keeps the oldest sighting of each secret (see ``order``).
            revs = self._revs()
            # Deleted files (--diff-filter=d) only carry removed lines; without rename
            # detection git works less and a moved file is scanned at its new path.
            command = ["log", *revs, _FORMAT, *_DIFF_OPTS, "--no-renames", "--diff-filter=d"]
        try:
            return self.repo.git.execute(
                ["git", "-c", "core.quotePath=false", *command], as_process=True
            )
        except git.GitCommandError as error:  # pragma: no cover - spawn failures
            raise SecretsdError(f"git {command[0]} failed: {_first_line(error)}") from None

    def _read(self, proc: Any, emit: Callable[[bytes], None]) -> None:
        """Read one git process, emitting chunks that start with a newline (so every header
        follows one) and end on a commit boundary, or between two files of one huge commit:
        then the rest starts with a copy of the commit's record line, so it keeps its commit."""
        import git

        stdout = proc.proc.stdout
        pending = b"\n"
        while True:
            block = stdout.read(_CHUNK)
            if not block:
                break
            pending += block
            cut = pending.rfind(b"\n" + _RECORD)
            carry = b""
            if cut <= 0:
                if self.kind == "staged" or len(pending) < 4 * _CHUNK:
                    continue
                cut = pending.rfind(DIFF_HEADER)  # one huge commit: cut between files
                if cut <= 0:
                    continue
                record = pending.rfind(b"\n" + _RECORD, 0, cut)
                if record >= 0:
                    carry = pending[record : pending.find(b"\n", record + 1)]
            emit(pending[: cut + 1])
            pending = carry + pending[cut:]
        if len(pending) > 1:
            emit(pending)
        try:
            proc.wait()
        except git.GitCommandError as error:
            raise InvalidInput(
                f"git failed in {self.repo.working_dir!r}: {_first_line(error)}; "
                "check the repository with `git fsck`"
            ) from None
        finally:
            for pipe in (proc.proc.stdout, proc.proc.stderr, proc.proc.stdin):
                if pipe is not None and not pipe.closed:
                    pipe.close()

    def _stream(self) -> Iterator[bytes]:
        """Chunks of patch text, each ending on a commit boundary."""
        chunks: list[bytes] = []
        if self.kind == "staged":
            self._read(self._spawn(), chunks.append)
            yield from chunks
            return
        if self._reader is None and self.start() is None:
            return
        running = len(self._readers)
        failure: BaseException | None = None
        while running:
            item = self._queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                failure = failure or item
            elif failure is None:
                yield item
        for reader in self._readers:
            reader.join()
        if failure is not None:
            raise failure

    def start(self) -> threading.Thread | None:
        """Start git now (it works while the caller loads rules); None when there is nothing."""
        if self._reader is not None or self.kind == "staged":
            return self._reader
        groups = self._groups()
        # `git log --all` in a repository without commits prints nothing.
        procs = [self._spawn()] if groups is None else [self._spawn_for(g) for g in groups]
        self._readers = [
            threading.Thread(target=self._pump, args=(proc,), daemon=True) for proc in procs
        ]
        for reader in self._readers:
            reader.start()
        self._reader = self._readers[0]
        return self._reader

    def _pump(self, proc: Any) -> None:
        """Read git in a thread (the pipe read releases the GIL, so git and scan overlap)."""
        try:
            self._read(proc, self._queue.put)
        except BaseException as error:
            self._queue.put(error)
        finally:
            self._queue.put(None)

    def fragments(self) -> Iterator[Fragment]:
        counted: set[str] = set()  # a huge commit's record line starts each of its chunks
        for data in self._stream():
            self.bytes += len(data) - 1
            commits = 0
            at = data.find(b"\n" + _RECORD)
            while at >= 0:
                sha = data[at + 2 : at + 42].decode("ascii", "replace")
                if sha not in counted:
                    counted.add(sha)
                    commits += 1
                    # One git process shows newest first; parallel ones were ordered by
                    # rev-list.
                    self.order.setdefault(sha, -self.commits - commits)
                at = data.find(b"\n" + _RECORD, at + 42)
            self.commits += commits
            if self.progress is not None:
                self.progress(len(data), commits)
            yield Fragment("", data, locate=_Chunk(data, None).locate, read_file=self.read_file)

    def read_file(self, path: str, commit: CommitInfo | None) -> bytes | None:
        """``path`` as of ``commit`` (the index for a staged scan), or None when git has no such
        text file; called only for the rare hunk whose meaning depends on lines outside it."""
        import subprocess

        rev = f"{commit.sha}:{path}" if commit is not None else f":{path}"
        try:
            proc = subprocess.run(
                ["git", "cat-file", "blob", rev],
                cwd=self.repo.working_dir,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0 or len(proc.stdout) > _MAX_FILE or b"\0" in proc.stdout[:8192]:
            return None
        return proc.stdout
