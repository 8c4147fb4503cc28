"""Reads through the cache, writes that invalidate everywhere, for the routes.

Reads run on the event loop (the backend's async reads); writes and listings
run the synchronous backend in a worker thread. Concurrent misses or
revalidations of one path share a single Vault call (single flight), so a
burst of readers costs Vault one request. While Vault is down, a cached entry
is served stale, and a miss falls back to the shared last-known-good copy
(:mod:`secretsd.server.stale_store`) that any worker or replica stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from secretsd.backends.base import SecretMetadata, SecretVersion, ServedBackend, secret_to_json
from secretsd.cache import CacheEntry, CacheKey, ReadCache
from secretsd.changes import Change, ChangeFeed
from secretsd.errors import NotFound, SecretsdError, VaultUnavailable
from secretsd.server.background import BackgroundTasks
from secretsd.server.metrics import Metrics
from secretsd.server.stale_store import StaleStore

__all__ = ["ReadResult", "SecretsService", "secret_body"]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Change-feed kind and key saying "Vault did not answer me" (see the transport's breaker).
_VAULT = "vault"
_DOWN = "down"


def secret_body(secret: SecretVersion) -> bytes:
    """The JSON body of ``GET /v1/secrets/{path}``, built once per cached version."""
    return orjson.dumps(secret_to_json(secret))


@dataclass(frozen=True, slots=True)
class ReadResult:
    entry: CacheEntry
    stale: bool = False

    @property
    def secret(self) -> SecretVersion:
        return self.entry.secret


class SecretsService:
    def __init__(
        self,
        backend: ServedBackend,
        cache: ReadCache | None,
        feed: ChangeFeed,
        metrics: Metrics,
        stale: StaleStore | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.stale = stale
        self.feed = feed
        self.metrics = metrics
        # Bound once: labels() takes a lock and builds a key on every call (hot path).
        self._cache_results = {
            result: metrics.cache.labels(result)
            for result in ("hit", "miss", "stale", "revalidated")
        }
        self._inflight: dict[tuple[str, CacheKey], asyncio.Future[Any]] = {}
        self._change_listeners: list[Callable[[str], None]] = []
        feed.subscribe(self._on_change)
        self._loop = asyncio.get_running_loop()
        self.background = BackgroundTasks()
        backend.on_down(self._vault_down_here)

    def _vault_down_here(self) -> None:
        """Called from whichever thread saw Vault fail; hop onto the event loop."""
        self._loop.call_soon_threadsafe(self._tell_vault_down)

    def _tell_vault_down(self) -> None:
        """This worker found Vault down: every other worker and replica fails fast at once."""
        self.background.spawn(self._publish(Change(_VAULT, _DOWN)))

    async def _publish(self, change: Change) -> None:
        try:
            await asyncio.to_thread(self.feed.publish, change.kind, change.key)
        except SecretsdError as error:
            log.warning("could not tell other workers that Vault is down: %s", error.message)

    def on_secret_change(self, listener: Callable[[str], None]) -> None:
        self._change_listeners.append(listener)

    def _on_change(self, change: Change) -> None:
        if change.kind == _VAULT and change.key == _DOWN:
            self.backend.mark_down("was found down by another secretsd worker or replica")
            return
        if change.kind != "secret":
            return
        if self.cache is not None:
            self.cache.invalidate(change.key)
        for listener in self._change_listeners:
            listener(change.key)

    # -- reads ------------------------------------------------------------

    async def read(self, path: str, version: int | None = None) -> ReadResult:
        if self.cache is None:
            secret = await self.backend.aread(path, version)
            return ReadResult(CacheEntry(secret, secret_body(secret)))
        key: CacheKey = (path, version)
        entry = self.cache.lookup(key)
        if entry is not None and self.cache.is_fresh(entry):
            self._cache_results["hit"].inc()
            return ReadResult(entry)
        if entry is not None:
            return await self._single_flight(
                "revalidate", key, lambda: self._revalidate(key, entry)
            )
        self._cache_results["miss"].inc()
        try:
            return ReadResult(await self._single_flight("fill", key, lambda: self._fill(key)))
        except VaultUnavailable:
            fallback = await self._last_known_good(key)
            if fallback is None:
                raise
            return fallback

    async def _last_known_good(self, key: CacheKey) -> ReadResult | None:
        """Vault is down and this worker never read ``key``: what any worker read last."""
        if self.stale is None or self.cache is None:
            return None
        generation = self.cache.generation(key[0])
        entry = await self.stale.load(key)
        if entry is None:
            return None
        # Cached as already expired: later reads here serve it stale without the
        # database, and revalidate it against Vault as soon as Vault is back.
        entry.checked_at = time.monotonic() - self.cache.ttl
        self.cache.store(key, entry, generation)
        self._cache_results["stale"].inc()
        return ReadResult(entry, stale=True)

    async def _single_flight(self, kind: str, key: CacheKey, work: Callable[[], Awaitable[T]]) -> T:
        flight = (kind, key)
        running = self._inflight.get(flight)
        if running is not None:
            result: T = await asyncio.shield(running)
            return result
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            value = await work()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: lone callers must not warn
            raise
        finally:
            self._inflight.pop(flight, None)
        future.set_result(value)
        return value

    async def _fill(self, key: CacheKey) -> CacheEntry:
        assert self.cache is not None
        generation = self.cache.generation(key[0])
        secret = await self.backend.aread(key[0], key[1])
        entry = CacheEntry(secret, secret_body(secret))
        if self.cache.store(key, entry, generation) and self.stale is not None:
            self.stale.remember(key, entry)
        return entry

    async def _revalidate(self, key: CacheKey, entry: CacheEntry) -> ReadResult:
        """Confirm a cached entry with one metadata call; serve it stale if Vault is down."""
        assert self.cache is not None
        path, version = key
        generation = self.cache.generation(path)
        try:
            meta = await self.backend.ametadata(path)
        except VaultUnavailable:
            self._cache_results["stale"].inc()
            return ReadResult(entry, stale=True)
        except NotFound:
            self.cache.invalidate(path)
            await self._forget_stale(path)
            raise
        wanted = version if version is not None else meta.current_version
        info = meta.version_info(wanted)
        unchanged = (
            wanted == entry.secret.version
            and info is not None
            and not info.deletion_time
            and not info.destroyed
            and meta.custom_metadata == entry.secret.custom_metadata
        )
        if unchanged and self.cache.generation(path) == generation:
            entry.checked_at = time.monotonic()
            self._cache_results["revalidated"].inc()
            return ReadResult(entry)
        self.cache.invalidate(path)
        await self._forget_stale(path)  # e.g. the cached version was deleted in Vault
        self._cache_results["miss"].inc()
        return ReadResult(await self._fill(key))

    async def _forget_stale(self, path: str) -> None:
        if self.stale is not None:
            await self.stale.forget(path)

    async def metadata(self, path: str) -> SecretMetadata:
        return await self.backend.ametadata(path)

    async def current_version(self, path: str) -> int:
        """The latest version number, 0 when the secret does not exist yet."""
        try:
            meta = await self.metadata(path)
        except NotFound:
            return 0
        return meta.current_version

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self.backend.list, prefix)

    # -- writes -----------------------------------------------------------

    async def _changed(self, path: str) -> None:
        """Invalidate here at once, then tell every other worker and replica.

        Runs after every write attempt, failed ones included (a timed-out
        write may still have landed). It never raises: if the database is
        down, other replicas still catch up through cache revalidation
        against Vault within ``cache_ttl``.
        """
        change = Change("secret", path)
        self.feed.deliver_local(change)
        await self._forget_stale(path)
        try:
            await asyncio.to_thread(self.feed.publish, change.kind, change.key)
        except SecretsdError as error:
            log.warning("could not publish change of %r to other replicas: %s", path, error.message)

    async def write(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None,
        binary_keys: frozenset[str],
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        try:
            return await asyncio.to_thread(
                lambda: self.backend.write(
                    path, data, cas=cas, binary_keys=binary_keys, custom_metadata=custom_metadata
                )
            )
        finally:
            await self._changed(path)

    async def patch(
        self,
        path: str,
        changes: Mapping[str, str | None],
        *,
        cas: int | None,
        binary_keys: frozenset[str],
    ) -> int:
        try:
            return await asyncio.to_thread(
                lambda: self.backend.patch(path, changes, cas=cas, binary_keys=binary_keys)
            )
        finally:
            await self._changed(path)

    async def update_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None,
        *,
        max_versions: int | None,
        cas_required: bool | None,
    ) -> None:
        try:
            await asyncio.to_thread(
                lambda: self.backend.update_metadata(
                    path, custom_metadata, max_versions=max_versions, cas_required=cas_required
                )
            )
        finally:
            await self._changed(path)

    async def delete(self, path: str, versions: Sequence[int] | None, destroy: bool) -> None:
        try:
            if destroy:
                chosen = list(versions or [])
                if not chosen:
                    chosen = [(await self.metadata(path)).current_version]
                await asyncio.to_thread(self.backend.destroy, path, chosen)
            else:
                await asyncio.to_thread(self.backend.delete, path, versions)
        finally:
            await self._changed(path)

    async def undelete(self, path: str, versions: Sequence[int]) -> None:
        try:
            await asyncio.to_thread(self.backend.undelete, path, versions)
        finally:
            await self._changed(path)

    async def delete_all(self, path: str) -> None:
        try:
            await asyncio.to_thread(self.backend.delete_all, path)
        finally:
            await self._changed(path)
