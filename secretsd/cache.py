"""The service's in-memory read cache (one per worker process).

An entry is trusted for ``ttl`` seconds after it was last confirmed against
Vault; after that the next read revalidates it with one metadata call (much
cheaper than re-reading, and it catches writes made directly in Vault).
Writes through secretsd invalidate entries at once, here and, through the
change feed, in every other worker and replica.

A per-path generation counter closes the race where a slow read from Vault
finishes after an invalidation: its result is not stored, because it may
predate the write that caused the invalidation.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from secretsd.backends.base import SecretVersion

__all__ = ["CacheEntry", "ReadCache"]

CacheKey = tuple[str, int | None]


@dataclass(slots=True)
class CacheEntry:
    """A cached version plus its ready-to-send JSON body."""

    secret: SecretVersion
    body: bytes
    checked_at: float = field(default_factory=time.monotonic)

    def __repr__(self) -> str:
        return f"CacheEntry({self.secret!r})"


class ReadCache:
    """LRU map of (path, version-or-latest) to entries, with generations for safe fills."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._keys_by_path: dict[str, set[CacheKey]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: CacheKey) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def is_fresh(self, entry: CacheEntry) -> bool:
        return time.monotonic() - entry.checked_at < self.ttl

    def generation(self, path: str) -> int:
        return self._generation.get(path, 0)

    def store(self, key: CacheKey, entry: CacheEntry, generation: int) -> bool:
        """Store unless ``path`` was invalidated since ``generation`` was read."""
        if self._generation.get(key[0], 0) != generation:
            return False
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._keys_by_path.setdefault(key[0], set()).add(key)
        while len(self._entries) > self.max_entries:
            evicted, _ = self._entries.popitem(last=False)
            keys = self._keys_by_path.get(evicted[0])
            if keys is not None:
                keys.discard(evicted)
                if not keys:
                    del self._keys_by_path[evicted[0]]
        return True

    def invalidate(self, path: str) -> None:
        """Forget every cached version of ``path``."""
        self._generation[path] = self._generation.get(path, 0) + 1
        for key in self._keys_by_path.pop(path, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        for path in list(self._keys_by_path):
            self.invalidate(path)
