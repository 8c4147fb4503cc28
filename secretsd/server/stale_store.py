"""Last-known-good secrets shared by every worker and replica, sealed at rest.

Each worker's read cache serves a secret stale while Vault is down, but only
if *that* worker read it before. So that stale serving does not depend on which
worker (or replica) answers, every worker also keeps the last version it read
from Vault in secretsd's database, where every worker and replica finds it.

- **Never plaintext on disk**: each row is the response body sealed with
  AES-256-GCM; the additional data binds it to its (path, version) slot, so a
  row cannot be moved to another path. The key is generated once and kept *in
  Vault* (``<prefix>/sys/stale-key``, a path the API refuses to serve), and
  held only in memory by the workers: a copy of the database alone reveals
  nothing.
- **Only while Vault is down**: a row is read only when Vault cannot answer a
  read; it is answered with ``X-Secretsd-Stale: true`` after the same policy
  check and audit as any read.
- **Bound**: what is served is the last version any worker read from Vault, no
  older than ``stale_max_age`` seconds, and never older than a write or delete
  made through secretsd (those remove the path's rows). A write made directly
  in Vault is seen once a worker reads it again (``cache_ttl``).
- Steady state costs nothing: a worker stores a row only when it reads a
  version it has not stored yet; storing runs off the request path, and the
  rows read meanwhile are stored together in one transaction (a migration
  reading 10,000 secrets costs a handful of transactions, not 10,000, which
  would also queue the audit log's writes behind them).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from typing import TYPE_CHECKING

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from secretsd.backends.base import SecretVersion
from secretsd.cache import CacheEntry, CacheKey
from secretsd.db.engine import database_errors
from secretsd.db.models import LastKnownGood
from secretsd.errors import CasMismatch, NotFound, SecretsdError

if TYPE_CHECKING:
    from secretsd.backends.base import ServedBackend

__all__ = ["KEY_PATH", "StaleStore"]

log = logging.getLogger(__name__)

#: Where the sealing key lives in Vault (under secretsd's prefix; "sys/" is reserved).
KEY_PATH = "sys/stale-key"


class StaleStore:
    def __init__(self, engine: Engine, backend: ServedBackend, max_age: float) -> None:
        self._engine = engine
        self._backend = backend
        self.max_age = max_age
        self._aead: AESGCM | None = None
        self._stored: dict[CacheKey, int] = {}
        self._stored_by_path: dict[str, set[CacheKey]] = {}
        self._queued: dict[CacheKey, CacheEntry] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._storing: asyncio.Future[None] | None = None  # the transaction in flight
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self._aead is not None

    # -- the key --------------------------------------------------------------

    async def load_key(self) -> bool:
        """Fetch (or create once, check-and-set) the sealing key from Vault; never raises."""
        if self._aead is not None:
            return True
        try:
            key = await asyncio.to_thread(self._fetch_or_create_key)
        except SecretsdError as error:
            log.warning("stale store: no key yet (%s); will retry", error.message)
            return False
        self._aead = AESGCM(key)
        return True

    def _fetch_or_create_key(self) -> bytes:
        try:
            return base64.b64decode(self._backend.read(KEY_PATH).data["key"])
        except NotFound:
            pass
        try:
            fresh = AESGCM.generate_key(bit_length=256)
            self._backend.write(KEY_PATH, {"key": base64.b64encode(fresh).decode()}, cas=0)
            return fresh
        except CasMismatch:  # another worker created it first
            return base64.b64decode(self._backend.read(KEY_PATH).data["key"])

    # -- store, load, forget ------------------------------------------------------

    def remember(self, key: CacheKey, entry: CacheEntry) -> None:
        """Store ``entry`` in the background if this worker has not stored that version."""
        version = entry.secret.version
        if self._stored.get(key) == version:
            return
        self._queued[key] = entry
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
            self._pending.add(self._flusher)
            self._flusher.add_done_callback(self._pending.discard)

    async def _flush(self) -> None:
        """Store every queued entry, a batch per transaction, until none is left."""
        while self._queued:
            await asyncio.sleep(0)  # let the rest of a burst of reads queue up first
            if not await self.load_key():
                return  # no key yet: the next read queues again and retries
            assert self._aead is not None
            batch, self._queued = self._queued, {}
            rows = []
            for (path, version), entry in batch.items():
                slot = version or 0
                nonce = os.urandom(12)
                sealed = nonce + self._aead.encrypt(nonce, entry.body, _aad(path, slot))
                rows.append((path, slot, entry.secret.version, sealed))
            storing = asyncio.ensure_future(asyncio.to_thread(self._upsert_many, rows))
            self._storing = storing
            try:
                await storing
            except SecretsdError as error:
                log.warning(
                    "stale store: could not store %d secret(s): %s", len(rows), error.message
                )
                continue
            for key, entry in batch.items():
                self._stored[key] = entry.secret.version
                self._stored_by_path.setdefault(key[0], set()).add(key)

    def _upsert_many(self, rows: list[tuple[str, int, int, bytes]]) -> None:
        try:
            # Two executemany statements, not two statements per row: storing the 5,000
            # rows a migration's re-run reads cost ~1 CPU-second as single statements.
            now = time.time()
            with database_errors(self._engine), self._engine.begin() as connection:
                connection.execute(
                    delete(LastKnownGood).where(
                        LastKnownGood.path == bindparam("old_path"),
                        LastKnownGood.version_key == bindparam("old_slot"),
                    ),
                    [{"old_path": path, "old_slot": slot} for path, slot, _, _ in rows],
                )
                connection.execute(
                    insert(LastKnownGood),
                    [
                        {
                            "path": path,
                            "version_key": slot,
                            "version": version,
                            "sealed": sealed,
                            "stored_at": now,
                        }
                        for path, slot, version, sealed in rows
                    ],
                )
        except IntegrityError:  # another worker stored one of these slots at the same moment
            for row in rows:
                self._upsert(*row)

    def _upsert(self, path: str, slot: int, version: int, sealed: bytes) -> None:
        where = (LastKnownGood.path == path, LastKnownGood.version_key == slot)
        values = {
            "path": path,
            "version_key": slot,
            "version": version,
            "sealed": sealed,
            "stored_at": time.time(),
        }
        with database_errors(self._engine):
            try:
                with self._engine.begin() as connection:
                    connection.execute(delete(LastKnownGood).where(*where))
                    connection.execute(insert(LastKnownGood).values(**values))
            except IntegrityError:
                pass  # another worker stored the same slot at the same moment

    async def load(self, key: CacheKey) -> CacheEntry | None:
        """The last-known-good entry for ``key``, if one is stored, fresh enough and intact."""
        if self._aead is None:
            return None
        path, version = key
        slot = version or 0
        try:
            found = await asyncio.to_thread(self._select, path, slot)
        except SecretsdError as error:
            log.warning("stale store: cannot read %r: %s", path, error.message)
            return None
        if found is None:
            return None
        sealed, stored_at = found
        if time.time() - stored_at > self.max_age:
            return None
        try:
            body = self._aead.decrypt(sealed[:12], sealed[12:], _aad(path, slot))
        except Exception:  # a tampered or foreign row: never served
            log.warning("stale store: the row for %r does not authenticate; ignored", path)
            return None
        return CacheEntry(_secret_from_body(body), body)

    def _select(self, path: str, slot: int) -> tuple[bytes, float] | None:
        with database_errors(self._engine), self._engine.connect() as connection:
            row = connection.execute(
                select(LastKnownGood.sealed, LastKnownGood.stored_at).where(
                    LastKnownGood.path == path, LastKnownGood.version_key == slot
                )
            ).first()
        return (bytes(row[0]), float(row[1])) if row is not None else None

    async def forget(self, path: str) -> None:
        """Drop every stored version of ``path`` (it was written or deleted).

        A version of it still queued is dropped too; one being stored right now
        is awaited first, so its row cannot land after the delete.
        """
        for key in self._stored_by_path.pop(path, set()):
            self._stored.pop(key, None)
        for key in [k for k in self._queued if k[0] == path]:
            del self._queued[key]
        storing = self._storing
        if storing is not None and not storing.done():
            await asyncio.wait({storing})
        try:
            await asyncio.to_thread(self._delete, path)
        except SecretsdError as error:
            log.warning("stale store: could not forget %r: %s", path, error.message)

    def _delete(self, path: str) -> None:
        with database_errors(self._engine), self._engine.begin() as connection:
            connection.execute(delete(LastKnownGood).where(LastKnownGood.path == path))

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()


def _aad(path: str, slot: int) -> bytes:
    return f"secretsd-stale\0{path}\0{slot}".encode()


def _secret_from_body(body: bytes) -> SecretVersion:
    """The response body back into the version it was built from."""
    parsed = orjson.loads(body)
    meta = parsed.get("metadata") or {}
    return SecretVersion(
        path=str(parsed["path"]),
        version=int(parsed["version"]),
        data=dict(parsed["data"]),
        created_time=str(meta.get("created_time", "")),
        custom_metadata=dict(meta.get("custom_metadata") or {}),
        binary_keys=frozenset(parsed.get("binary_keys") or ()),
    )
