"""The change feed: how workers and replicas tell each other "this changed".

secretsd may run as several worker processes and several replicas sharing one
database and one Vault. Each keeps a read cache, so a write through one must
reach the others. Every write through secretsd appends a row here; every
process polls for rows it has not seen (one cheap indexed query per poll,
whatever the number of cached secrets or waiting clients) and drops the
matching cache entries, wakes long-poll waiters and forgets revoked tokens.

Writes made directly in Vault, bypassing secretsd, are caught instead by the
cache's revalidation against Vault metadata.

Identity and policy changes must reach every worker of one replica before the
changing call returns, which a poll cannot promise. Workers of one replica
share a data directory, so they also share a :class:`LocalGeneration`: an
8-byte counter in a memory-mapped file that the publisher increments after
its change row commits. Every authorising request compares it with the value
it last saw (a memory read, no system call) and, when it moved, polls the
feed before deciding. Other replicas learn of the change by the poll, within
``change_poll_interval`` (0.1 s by default) plus one query; a worker whose
last successful poll is older than the bound (1 s, or three poll intervals if
longer) polls before deciding, and fails closed if it cannot.

Ids come from a sequence, and on PostgreSQL a lower id can commit after a
higher one, so the poll re-reads a window below the highest id seen and
remembers which ids it has handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, func, insert, select

from secretsd.db.engine import database_errors
from secretsd.db.models import ChangeEvent
from secretsd.errors import SecretsdError

__all__ = ["AUTHZ_KINDS", "Change", "ChangeFeed", "LocalGeneration"]

log = logging.getLogger(__name__)

_WINDOW = 1000
_RETENTION_SECONDS = 3600.0
#: Changes that alter who may do what: every worker must apply them before deciding.
AUTHZ_KINDS = frozenset({"token", "policy", "role"})
_COUNTER = struct.Struct("=Q")


class LocalGeneration:
    """A counter shared by the worker processes of one replica (one data directory).

    Falls back to a private counter when the file cannot be made (a single
    worker needs nothing more); the poll still converges then.
    """

    def __init__(self, path: Path | None) -> None:
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._private = 0
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_size < _COUNTER.size:
                    os.ftruncate(fd, _COUNTER.size)
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._map = mmap.mmap(fd, _COUNTER.size)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        except OSError as error:
            log.warning(
                "cannot share identity changes between workers through %s (%s); other "
                "workers will see them within the change-poll interval",
                path,
                error.strerror,
            )

    def read(self) -> int:
        if self._map is None:
            return self._private
        value: int = _COUNTER.unpack_from(self._map, 0)[0]
        return value

    def bump(self) -> None:
        """Increment, under an exclusive lock so concurrent publishers never lose a step."""
        if self._map is None or self._fd is None:
            self._private += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _COUNTER.pack_into(self._map, 0, _COUNTER.unpack_from(self._map, 0)[0] + 1)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "secret" or "token"
    key: str  # a secret path or a token accessor


class ChangeFeed:
    """Publish changes to the shared database and deliver everyone's changes locally."""

    def __init__(
        self,
        engine: Engine,
        poll_interval: float = 0.1,
        generation: LocalGeneration | None = None,
    ) -> None:
        self._engine = engine
        self.generation = generation or LocalGeneration(None)
        self._poll_interval = poll_interval
        self._listeners: list[Callable[[Change], None]] = []
        self._high = 0
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        # Our own changes were delivered locally when published; the poll skips them.
        self.origin = uuid.uuid4().hex
        self.healthy = True
        #: monotonic start time of the last poll that succeeded: everything
        #: committed before it has been delivered.
        self.polled_at = time.monotonic()

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def publish(self, kind: str, key: str) -> None:
        """Record a change (blocking; call from a worker thread)."""
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(
                insert(ChangeEvent),
                [{"kind": kind, "key": key, "origin": self.origin, "created_at": time.time()}],
            )
        if kind in AUTHZ_KINDS:
            self.generation.bump()  # after the commit: a worker that sees it finds the row

    def deliver_local(self, change: Change) -> None:
        """Tell this process's listeners at once, without waiting for the poll."""
        for listener in self._listeners:
            listener(change)

    async def start(self) -> None:
        # Start from "now": older changes are already reflected in Vault.
        self._high = await asyncio.to_thread(self._max_id)
        for change_id, *_ in await asyncio.to_thread(self._fetch):
            self._remember(change_id)
        self._task = asyncio.create_task(self._run(), name="secretsd-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _max_id(self) -> int:
        with database_errors(self._engine), self._engine.connect() as connection:
            return int(connection.execute(select(func.max(ChangeEvent.id))).scalar() or 0)

    def _fetch(self) -> list[tuple[int, str, str, str]]:
        floor = max(self._high - _WINDOW, 0)
        with database_errors(self._engine), self._engine.connect() as connection:
            rows = connection.execute(
                select(ChangeEvent.id, ChangeEvent.kind, ChangeEvent.key, ChangeEvent.origin)
                .where(ChangeEvent.id > floor)
                .order_by(ChangeEvent.id)
            ).all()
            now = time.time()
            if now - self._last_prune > 60:
                self._last_prune = now
                connection.execute(
                    delete(ChangeEvent).where(ChangeEvent.created_at < now - _RETENTION_SECONDS)
                )
                connection.commit()
        return [(int(r.id), str(r.kind), str(r.key), str(r.origin)) for r in rows]

    async def poll_once(self) -> int:
        """Fetch and deliver new changes; return how many were new."""
        started = time.monotonic()
        rows = await asyncio.to_thread(self._fetch)
        delivered = 0
        for change_id, kind, key, origin in rows:
            if change_id in self._seen or change_id <= self._high - _WINDOW:
                continue
            self._remember(change_id)
            self._high = max(self._high, change_id)
            if origin != self.origin:
                self.deliver_local(Change(kind, key))
            delivered += 1
        self.polled_at = max(self.polled_at, started)
        return delivered

    def _remember(self, change_id: int) -> None:
        self._seen.add(change_id)
        self._seen_order.append(change_id)
        while len(self._seen_order) > 4 * _WINDOW:
            self._seen.discard(self._seen_order.popleft())

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
                self.healthy = True
            except SecretsdError as error:
                if self.healthy:
                    log.warning("change feed poll failed: %s", error.message)
                self.healthy = False
            except Exception:
                log.exception("change feed poll failed unexpectedly")
                self.healthy = False
            await asyncio.sleep(self._poll_interval)
