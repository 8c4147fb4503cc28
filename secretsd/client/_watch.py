"""Change notifications: one long-poll loop per watched path, shared by its watchers.

However many callbacks or iterators watch ``apps/web/db`` in one client,
the client keeps exactly one ``GET /v1/secrets/apps/web/db?wait=..&after=..``
in flight. When it answers with a new version, the loop stores it in the
cache (so ``get`` serves the new value at once, without a round trip: the
path is *live*) and hands it to every watcher. Failures back off and retry
until the last watcher leaves; while failing, the path is not live, so
reads go back to revalidating.

The hub is asyncio code. ``AsyncClient`` runs it on the caller's loop;
``Client`` runs it on one private loop thread, so its callbacks are called
on that thread and stopping cancels the in-flight long-poll at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from secretsd.backends.base import SecretVersion
from secretsd.client._core import ClientCore
from secretsd.client._effects import Op
from secretsd.errors import NotFound, SecretsdError

__all__ = ["Latest", "Subscription", "WatchHandle", "WatchHub"]

log = logging.getLogger("secretsd.client")

Deliver = Callable[[SecretVersion], Any]


@dataclass(eq=False)
class Subscription:
    path: str
    deliver: Deliver
    active: bool = True
    #: Called once when the subscription ends (wakes a waiting iterator).
    on_stop: Callable[[], None] | None = None

    def end(self) -> None:
        if self.active:
            self.active = False
            if self.on_stop is not None:
                self.on_stop()


@dataclass(eq=False)
class _PathLoop:
    path: str
    version: int
    subscribers: list[Subscription] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Latest:
    """A one-slot mailbox for iterators: a slow reader skips to the newest version."""

    def __init__(self) -> None:
        self._value: SecretVersion | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, secret: SecretVersion) -> None:
        self._value = secret
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> SecretVersion:
        """The next version; StopAsyncIteration once closed."""
        await self._ready.wait()
        self._ready.clear()
        value = self._value
        if value is None or self._closed:
            raise StopAsyncIteration
        self._value = None
        return value


class WatchHub:
    def __init__(self, core: ClientCore, run: Callable[[Op[Any]], Awaitable[Any]]) -> None:
        self._core = core
        self._run = run
        self._loops: dict[str, _PathLoop] = {}
        self._callbacks: set[asyncio.Task[Any]] = set()
        self.polls = 0

    @property
    def watched_paths(self) -> int:
        return len(self._loops)

    def subscribe(
        self,
        path: str,
        after: int,
        deliver: Deliver,
        on_stop: Callable[[], None] | None = None,
    ) -> Subscription:
        """Start delivering versions of ``path`` newer than ``after`` (call on the hub's loop)."""
        subscription = Subscription(path, deliver, on_stop=on_stop)
        loop = self._loops.get(path)
        if loop is None:
            loop = self._loops[path] = _PathLoop(path, after)
            self._core.cache.set_live(path, True)
            loop.task = asyncio.get_running_loop().create_task(
                self._poll(loop), name=f"secretsd-watch:{path}"
            )
        loop.subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering; the path's loop stops with its last watcher (call on the loop)."""
        subscription.end()
        loop = self._loops.get(subscription.path)
        if loop is None or subscription not in loop.subscribers:
            return
        loop.subscribers.remove(subscription)
        if not loop.subscribers:
            del self._loops[subscription.path]
            self._core.cache.set_live(subscription.path, False)
            if loop.task is not None:
                loop.task.cancel()

    async def close(self) -> None:
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        for loop in self._loops.values():
            self._core.cache.set_live(loop.path, False)
            for subscription in loop.subscribers:
                subscription.end()
        self._loops.clear()
        tasks.extend(self._callbacks)
        current = asyncio.current_task()
        tasks = [task for task in tasks if task is not current]  # closed from a callback
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _poll(self, loop: _PathLoop) -> None:
        failures = 0
        while True:
            try:
                if failures:
                    # Back from a failure: catch up with one read, then long-poll again.
                    secret = await self._resync(loop.path)
                else:
                    secret = await self._run(
                        self._core.poll_op(loop.path, loop.version, self._core.watch_wait)
                    )
            except SecretsdError as error:
                self._core.cache.set_live(loop.path, False)
                failures += 1
                if failures == 1:
                    log.warning("watching %r failed, retrying: %s", loop.path, error.message)
                await asyncio.sleep(self._core.retry.delay(failures))
                continue
            self.polls += 1
            if failures:
                log.info("watching %r works again", loop.path)
                failures = 0
                self._core.cache.set_live(loop.path, True)
            if secret is None or secret.version <= loop.version:
                continue
            loop.version = secret.version
            for subscription in list(loop.subscribers):
                self._deliver(subscription, secret)

    async def _resync(self, path: str) -> SecretVersion | None:
        try:
            secret: SecretVersion = await self._run(self._core.read_op(path, revalidate=True))
        except NotFound:
            return None
        return secret

    def _deliver(self, subscription: Subscription, secret: SecretVersion) -> None:
        if not subscription.active:
            return
        try:
            result = subscription.deliver(secret)
        except Exception:
            log.exception("a watch callback for %r raised", subscription.path)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._callbacks.add(task)
            task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a watch callback raised", exc_info=task.exception())


class WatchHandle:
    """What ``watch()`` returns: the watched path, whether it is live, and ``stop()``."""

    def __init__(
        self, subscription: Subscription, unsubscribe: Callable[[Subscription], None]
    ) -> None:
        self._subscription = subscription
        self._unsubscribe = unsubscribe

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, active={self.active})"

    @property
    def path(self) -> str:
        return self._subscription.path

    @property
    def active(self) -> bool:
        return self._subscription.active

    def stop(self) -> None:
        """No callback runs after this returns (unless called from that callback itself)."""
        self._unsubscribe(self._subscription)
