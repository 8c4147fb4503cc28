"""A tree scan over several processes: forked workers share the loaded engine.

A tree scan is CPU work in one Python process: Hyperscan's pass over the bytes,
then the judging of each hit. Threads do not help: the judging holds the GIL,
and a reading or prefilter thread waits for it (measured: 0.51 s -> 0.42 s on
the 40 MB tree with two prefilter threads and a reading thread, against 0.35 s
with two processes). So on Linux the files are split between the process and
``jobs - 1`` children forked *after* the rules and the Hyperscan database are
loaded (copy-on-write: no worker loads or compiles anything again).

The files go out in small blocks of consecutive paths, dealt so that every
worker gets about the same number of bytes, and the findings come back per
block and are put back in path order: the result is the one-process scan's,
finding for finding (``tests/scanners/test_forked.py``). Each child sends its findings and
its skip counts through a pipe and leaves with ``os._exit`` (it must not run the
parent's exit handlers or flush its buffers). A child that fails in any way (an
error, a crash, a kill) costs time, not findings: the parent scans that child's
blocks itself, so an error a user must see (an unreadable file) is raised by the
parent as in a one-process scan.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from secretsd.scanners.engine import Engine
from secretsd.scanners.model import Finding
from secretsd.scanners.sources.tree import SkipStats, TreeSource

__all__ = ["MIN_FILES", "available", "scan_tree"]

#: Fewer files than this are scanned in one process: a fork costs more than it saves.
MIN_FILES = 256
#: Paths per block: small enough to balance the workers, large enough to cost nothing.
_BLOCK = 32

Block = tuple[int, list[tuple[str, list[Finding]]]]


def available() -> bool:
    """Forking a loaded interpreter is cheap on Linux, and safe while it runs one thread: a
    fork copies only the calling thread, so a lock another thread holds (a logging handler's,
    an allocator's) would stay locked in the child. A program that calls ``run_scan`` from
    a threaded service therefore scans in one process; so does every other platform."""
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


def _scan_blocks(
    tree: TreeSource, engine: Engine, blocks: list[list[str]], mine: list[int]
) -> list[Block]:
    return [
        (index, [(f.path, engine.scan(f)) for f in tree.fragments(blocks[index])]) for index in mine
    ]


def _child(
    tree: TreeSource, engine: Engine, blocks: list[list[str]], mine: list[int], out: int
) -> NoReturn:
    """The body of a forked worker; never returns."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a worker at once
        tree.stats = SkipStats()  # only this worker's share goes back
        payload = pickle.dumps((_scan_blocks(tree, engine, blocks, mine), tree.stats))
        with os.fdopen(out, "wb") as pipe:
            pipe.write(payload)
        status = 0
    finally:
        os._exit(status)


@dataclass
class _Worker:
    """A forked child until it is reaped: ``read_end`` is None once the parent's reader owns
    (and so closes) the pipe, ``pid`` is 0 once the child is reaped."""

    pid: int
    read_end: int | None
    share: list[int]


def _collect(worker: _Worker) -> tuple[list[Block], SkipStats] | None:
    """A child's result, or None if it did not deliver one whole."""
    if worker.read_end is None:
        return None
    with os.fdopen(worker.read_end, "rb") as pipe:
        worker.read_end = None
        data = pipe.read()
    _, status = os.waitpid(worker.pid, 0)
    worker.pid = 0
    if status != 0 or not data:
        return None
    try:
        result: tuple[list[Block], SkipStats] = pickle.loads(data)  # noqa: S301 - our child's
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None
    return result


def _stop(worker: _Worker) -> None:
    """End and reap a child the scan no longer waits for (an error or Ctrl-C in the parent,
    even while it was reading this child's pipe)."""
    if worker.read_end is not None:
        os.close(worker.read_end)
        worker.read_end = None
    if worker.pid:
        try:
            os.kill(worker.pid, signal.SIGTERM)
            os.waitpid(worker.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
        worker.pid = 0


def _shares(tree: TreeSource, blocks: list[list[str]], jobs: int) -> list[list[int]]:
    """Block indexes per worker, balanced by the bytes they will scan (files over the size
    limit count nothing: they are skipped after their stat): the largest blocks first, each
    to the worker with the least so far. By count alone, one worker of the 40 MB tree got
    25 MB and the other 15 MB, and the scan waited for the first."""
    root = str(tree.root)
    limit = tree.max_file_size

    def size(path: str) -> int:
        try:
            size = os.lstat(os.path.join(root, path)).st_size
        except OSError:
            return 0  # unreadable: the worker counts it, it costs nothing to scan
        return size if size <= limit else 0  # too large: skipped after its stat

    weights = [sum(size(path) for path in block) for block in blocks]
    loads = [0] * jobs
    shares: list[list[int]] = [[] for _ in range(jobs)]
    for index in sorted(range(len(blocks)), key=weights.__getitem__, reverse=True):
        worker = loads.index(min(loads))
        shares[worker].append(index)
        loads[worker] += weights[index]
    return [sorted(share) for share in shares]


def scan_tree(tree: TreeSource, engine: Engine, jobs: int) -> Iterator[tuple[str, list[Finding]]]:
    """``(path, findings)`` for every scanned file in path order, using ``jobs`` processes."""
    paths = list(tree.paths())
    if jobs <= 1 or len(paths) < MIN_FILES or not available():
        for fragment in tree.fragments(paths):
            yield fragment.path, engine.scan(fragment)
        return
    blocks = [paths[i : i + _BLOCK] for i in range(0, len(paths), _BLOCK)]
    shares = _shares(tree, blocks, jobs)
    children: list[_Worker] = []
    results: dict[int, list[tuple[str, list[Finding]]]] = {}
    try:
        for share in shares[1:]:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which leaves by os._exit
                os.close(read_end)
                _child(tree, engine, blocks, share, write_end)
            os.close(write_end)
            children.append(_Worker(pid, read_end, share))
        results.update(_scan_blocks(tree, engine, blocks, shares[0]))
        for worker in children:
            delivered = _collect(worker)
            if delivered is None:  # the child failed: its blocks are scanned here instead
                results.update(_scan_blocks(tree, engine, blocks, worker.share))
                continue
            done, stats = delivered
            results.update(done)
            tree.stats.add(stats)
    finally:
        for worker in children:  # an error or an interrupt here: stop and reap the others
            _stop(worker)
    for index in range(len(blocks)):
        yield from results[index]
