"""Long-poll change detection: one watcher per path, shared by all its waiters.

``GET /v1/secrets/{path}?wait=30&after=3`` returns as soon as a version newer
than 3 exists. However many clients wait on a path, this worker runs one
watcher for it, which asks Vault for the path's metadata every
``watch_interval`` seconds; Vault load grows with the number of watched
paths, never with the number of waiters. Writes through secretsd (in any
worker or replica, via the change feed) poke the watcher so waiters learn of
them at once rather than at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from secretsd.errors import SecretsdError
from secretsd.server.secrets_service import SecretsService

__all__ = ["WatchHub"]

log = logging.getLogger(__name__)


@dataclass
class _Watcher:
    version: int = -1  # -1: not known yet
    waiters: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class WatchHub:
    def __init__(self, service: SecretsService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._watchers: dict[str, _Watcher] = {}
        self.vault_polls = 0
        service.on_secret_change(self.poke)

    @property
    def watched_paths(self) -> int:
        return len(self._watchers)

    def poke(self, path: str) -> None:
        """Something changed at ``path``: make its watcher look now."""
        watcher = self._watchers.get(path)
        if watcher is not None:
            watcher.poke.set()

    async def wait_for_newer(self, path: str, after: int, timeout: float) -> int | None:
        """Return the first version > ``after`` seen within ``timeout`` s, else None."""
        watcher = self._watchers.get(path)
        if watcher is None:
            watcher = self._watchers[path] = _Watcher()
            watcher.task = asyncio.create_task(self._watch(path, watcher), name=f"watch:{path}")
        watcher.waiters += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if watcher.version > after:
                    return watcher.version
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                changed = watcher.changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            watcher.waiters -= 1
            if watcher.waiters == 0 and watcher.task is not None:
                watcher.task.cancel()
                self._watchers.pop(path, None)

    async def _watch(self, path: str, watcher: _Watcher) -> None:
        failing = False
        while True:
            watcher.poke.clear()
            try:
                version = await self._service.current_version(path)
                self.vault_polls += 1
                failing = False
            except SecretsdError as error:
                if not failing:
                    log.warning("watching %r: %s", path, error.message)
                failing = True
                version = watcher.version
            if version != watcher.version:
                first = watcher.version == -1
                watcher.version = version
                if not first and self._service.cache is not None:
                    self._service.cache.invalidate(path)
                # Wake everyone waiting on this round, then start a new round.
                watcher.changed.set()
                watcher.changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.poke.wait(), self._interval)

    async def close(self) -> None:
        for watcher in self._watchers.values():
            if watcher.task is not None:
                watcher.task.cancel()
        self._watchers.clear()
