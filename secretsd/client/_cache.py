"""The SDK's in-process cache: bookkeeping only, no I/O.

An entry is served without a network call while it is younger than the
client's ``cache_ttl``, or for as long as its path is *live*: watched by a
long-poll loop of this client, which replaces the entry the moment a new
version exists. Otherwise the next read revalidates it with
``If-None-Match`` (a 304 costs no data transfer and renews the entry).
Entries the service marked stale (Vault down) are revalidated every time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from secretsd.backends.base import SecretVersion

__all__ = ["SecretCache"]

CacheKey = tuple[str, int | None]


@dataclass(slots=True)
class _Entry:
    secret: SecretVersion
    checked: float
    stale: bool


class SecretCache:
    def __init__(self, ttl: float, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        #: Paths kept current by a long-poll loop: their latest entry never expires.
        self._live: set[str] = set()
        # Writers hold the lock (the watch thread and callers may write at once);
        # the hot path, fresh(), only reads and takes no lock.
        self._lock = threading.Lock()
        self.hits = 0
        self.fills = 0

    def fresh(self, path: str, version: int | None) -> SecretVersion | None:
        """The cached secret if it may be served without asking the service."""
        entry = self._entries.get((path, version))
        if entry is None or entry.stale:
            return None
        if (version is None and path in self._live) or (
            time.monotonic() - entry.checked < self.ttl
        ):
            self.hits += 1
            return entry.secret
        return None

    def etag(self, path: str, version: int | None) -> str | None:
        entry = self._entries.get((path, version))
        return None if entry is None else f'"{entry.secret.version}"'

    def store(
        self, path: str, version: int | None, secret: SecretVersion, *, stale: bool = False
    ) -> None:
        key = (path, version)
        with self._lock:
            current = self._entries.get(key)
            if current is not None and version is None and current.secret.version > secret.version:
                return  # a slower answer must not replace a newer version
            self.fills += 1
            self._entries[key] = _Entry(secret, time.monotonic(), stale)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def touch(self, path: str, version: int | None, *, stale: bool = False) -> SecretVersion | None:
        """A 304 confirmed the cached entry: serve it and restart its clock."""
        entry = self._entries.get((path, version))
        if entry is None:
            return None
        entry.checked = time.monotonic()
        entry.stale = stale
        return entry.secret

    def invalidate(self, path: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == path]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def set_live(self, path: str, live: bool) -> None:
        """Mark ``path`` as kept current (or no longer) by this client's long-poll loop."""
        if live:
            self._live.add(path)
        else:
            self._live.discard(path)

    def __len__(self) -> int:
        return len(self._entries)
