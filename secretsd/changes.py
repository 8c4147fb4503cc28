"""The change feed: how workers and replicas tell each other "this changed".

secretsd may run as several worker processes and several replicas sharing one
database and one Vault. Each keeps a read cache, so a write through one must
reach the others. Every write through secretsd appends a row here; every
process polls for rows it has not seen (one cheap indexed query per poll,
whatever the number of cached secrets or waiting clients) and drops the
matching cache entries, wakes long-poll waiters and forgets revoked tokens.

Writes made directly in Vault, bypassing secretsd, are caught instead by the
cache's revalidation against Vault metadata.

Ids come from a sequence, and on PostgreSQL a lower id can commit after a
higher one, so the poll re-reads a window below the highest id seen and
remembers which ids it has handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select

from secretsd.db.engine import database_errors
from secretsd.db.models import ChangeEvent
from secretsd.errors import SecretsdError

__all__ = ["Change", "ChangeFeed"]

log = logging.getLogger(__name__)

_WINDOW = 1000
_RETENTION_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "secret" or "token"
    key: str  # a secret path or a token accessor


class ChangeFeed:
    """Publish changes to the shared database and deliver everyone's changes locally."""

    def __init__(self, engine: Engine, poll_interval: float = 0.1) -> None:
        self._engine = engine
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

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def publish(self, kind: str, key: str) -> None:
        """Record a change (blocking; call from a worker thread)."""
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(
                insert(ChangeEvent),
                [{"kind": kind, "key": key, "origin": self.origin, "created_at": time.time()}],
            )

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
