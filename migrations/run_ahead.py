"""Run slow steps of a stream on worker threads, ahead of the reader, keeping the stream's order.

Why: a no-change ``migrate apply`` of an Ansible tree spends most of its CLI
time in PBKDF2 (10,000 rounds of SHA-256 for every vault text; each inline
value has its own salt, so nothing can be shared). ``cryptography`` releases
the GIL while it derives a key (measured: two threads keep 1.7 of 2 cores
busy), so plain threads use every core, with no process start-up, no pickling
and no extra interpreter's memory.

The importer yields finished items and :class:`Deferred` work (a decryption
and what follows from it); :func:`in_order` runs the deferred work on up to
``workers`` threads, at most ``ahead`` of them queued, and yields every item
in exactly the order the importer produced them, so a plan is byte-for-byte
the plan the sequential path makes. ``workers <= 1`` is that sequential path.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Deferred", "default_workers", "in_order"]

T = TypeVar("T")

#: Upper bound on decryption threads, whatever the machine reports.
MAX_WORKERS = 8


@dataclass(frozen=True, slots=True)
class Deferred(Generic[T]):
    """Work that produces some items; run on a worker thread, its items keep their place."""

    work: Callable[[], list[T]]

    @classmethod
    def single(cls, work: Callable[[], T]) -> Deferred[T]:
        """Work that produces exactly one item (one inline vault value)."""
        return cls(lambda: [work()])


def default_workers() -> int:
    """One thread per CPU this process may run on (bounded): PBKDF2 is CPU-bound."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, os.cpu_count() or cpus, MAX_WORKERS))


def in_order(
    produced: Iterable[T | Deferred[T]], workers: int, ahead: int | None = None
) -> Iterator[T]:
    """Every item of ``produced`` (deferred work replaced by its items), in order.

    ``ahead`` bounds the deferred work queued or running (default two per
    worker), which bounds memory: results wait only until their turn.
    """
    if workers <= 1:
        for entry in produced:
            if isinstance(entry, Deferred):
                yield from entry.work()
            else:
                yield entry
        return
    limit = ahead if ahead is not None else 2 * workers
    window: deque[T | Future[list[T]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate-decrypt")

    queued = [0]  # deferred work in the window

    def due() -> bool:
        """The head can go: a finished item, done work, or more work queued than allowed."""
        head = window[0]
        return not isinstance(head, Future) or head.done() or queued[0] > limit

    def release(head: T | Future[list[T]]) -> Iterator[T]:
        if not isinstance(head, Future):
            return iter((head,))
        queued[0] -= 1
        return iter(head.result())

    entries = iter(produced)
    try:
        while True:
            try:
                entry = next(entries)
            except StopIteration:
                break
            except Exception:
                # As the sequential path: what came before the failure is yielded first.
                while window:
                    yield from release(window.popleft())
                raise
            if isinstance(entry, Deferred):
                window.append(pool.submit(entry.work))
                queued[0] += 1
            else:
                window.append(entry)
            while window and due():
                yield from release(window.popleft())
        while window:
            yield from release(window.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
