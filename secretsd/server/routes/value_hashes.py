"""``POST /v1/values/hash-lookup``: which stored values does a scanner's candidate list contain?

The scanner (``secretsd scan --managed``) sends the first five hex characters
of the SHA-256 of each candidate string; the answer is the full SHA-256 of
every stored value whose hash starts with one of those prefixes and that the
caller may read. Values never leave the server, and the candidates never
reach it: the scanner compares full hashes itself (k-anonymity, as in
"have I been pwned" range queries).

Each worker keeps an in-memory index ``prefix -> [(hash, path)]`` built
lazily and only as far as the callers reach: a lookup lists the folders and
reads the secrets its caller may read that are not indexed yet (so a token
that reads nothing makes the worker list and read nothing); a path
reported changed by ``state.secrets.on_secret_change`` is re-read (and its
folders listed again) before the next lookup answers. Every path whose hashes are returned
is audited (action ``hash-lookup``), like any other read.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import weakref
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from secretsd.errors import NotFound, SecretsdError
from secretsd.policy import PolicySet
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.schemas import RESERVED_TOP
from secretsd.server.state import AppState

__all__ = ["PREFIX_LENGTH", "HashLookupRequest", "ValueHashIndex", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["scanner"])

PREFIX_LENGTH = 5
MAX_PREFIXES = 10_000
MAX_SECRETS = 200_000
_PREFIX = re.compile(rf"[0-9a-f]{{{PREFIX_LENGTH}}}")


class HashLookupRequest(BaseModel):
    """``{"prefixes": ["3fa9c", ...]}``: lower-case hex, five characters each."""

    model_config = ConfigDict(extra="forbid")
    prefixes: list[str] = Field(max_length=MAX_PREFIXES)

    @field_validator("prefixes")
    @classmethod
    def _hex_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not _PREFIX.fullmatch(prefix):
                raise ValueError(
                    f"each prefix is {PREFIX_LENGTH} lower-case hex characters of a SHA-256"
                )
        return value


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class ValueHashIndex:
    """SHA-256 of every stored value, by prefix; one per worker, refreshed on change."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._by_prefix: dict[str, list[tuple[str, str]]] = {}
        self._by_path: dict[str, set[str]] = {}
        self._children: dict[str, list[str]] = {}  # folder -> its listing, once listed
        self._indexed: set[str] = set()  # paths read into the index at least once
        self._dirty: set[str] = set()
        self._lock = asyncio.Lock()
        state.secrets.on_secret_change(self._changed)

    def _changed(self, path: str) -> None:
        self._dirty.add(path)
        parts = path.split("/")
        for depth in range(len(parts)):  # its folders may have gained or lost an entry
            self._children.pop("/".join(parts[:depth]), None)

    async def _paths(self, scope: PolicySet) -> list[str]:
        """Paths not indexed yet that ``scope`` may read, listing only folders it can see."""
        found: list[str] = []
        pending = [""]
        while pending and len(found) + len(self._by_path) < MAX_SECRETS:
            prefix = pending.pop()
            if not scope.sees(prefix, folder=True):
                continue
            children = self._children.get(prefix)
            if children is None:
                children = self._children[prefix] = await self._state.secrets.list(prefix)
            for name in children:
                child = f"{prefix}/{name}" if prefix else name
                if child == f"{RESERVED_TOP}/":
                    continue  # secretsd's own keys (e.g. the stale store's) are never indexed
                if child.endswith("/"):
                    pending.append(child.rstrip("/"))
                elif child not in self._indexed and scope.allows("read", child):
                    found.append(child)
        return found

    def _forget(self, path: str) -> None:
        for digest in self._by_path.pop(path, set()):
            bucket = self._by_prefix.get(digest[:PREFIX_LENGTH], [])
            bucket[:] = [(d, p) for d, p in bucket if p != path]

    async def _load(self, path: str) -> None:
        self._forget(path)
        try:
            result = await self._state.secrets.read(path)
        except NotFound:
            return
        digests = {_digest(value) for value in result.secret.data.values() if value}
        self._by_path[path] = digests
        for digest in digests:
            self._by_prefix.setdefault(digest[:PREFIX_LENGTH], []).append((digest, path))

    async def refresh(self, scope: PolicySet) -> None:
        """Index what ``scope`` may read and is not indexed yet, then re-read changed paths.

        Scoped, so a caller can only make the worker read what the caller could
        read itself: the index grows with the callers' reach, not all at once.
        """
        async with self._lock:
            for path in await self._paths(scope):
                self._indexed.add(path)
                self._dirty.discard(path)
                try:
                    await self._load(path)
                except SecretsdError as error:  # one unreadable secret must not block all
                    log.warning("value index skips %r: %s", path, error.code)
            while self._dirty:
                path = self._dirty.pop()
                try:
                    await self._load(path)
                except SecretsdError as error:
                    log.warning("value index could not refresh %r: %s", path, error.code)
                    self._forget(path)

    def matching(self, prefixes: list[str]) -> list[tuple[str, str]]:
        """(hash, path) pairs whose hash starts with one of ``prefixes``."""
        pairs: list[tuple[str, str]] = []
        for prefix in set(prefixes):
            pairs.extend(self._by_prefix.get(prefix, ()))
        return pairs


_INDEXES: weakref.WeakKeyDictionary[AppState, ValueHashIndex] = weakref.WeakKeyDictionary()


def index_for(state: AppState) -> ValueHashIndex:
    """The worker's index (created on first use, so idle workers never read every secret)."""
    index = _INDEXES.get(state)
    if index is None:
        index = _INDEXES[state] = ValueHashIndex(state)
    return index


@audited_by("secret-decision")
@router.post(
    "/v1/values/hash-lookup",
    summary="Full SHA-256 of readable stored values matching hash prefixes (for secretsd scan)",
)
async def hash_lookup(
    body: HashLookupRequest, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    index = index_for(state)
    await index.refresh(state.policy_set(caller.identity.policies))
    hashes: set[str] = set()
    paths: set[str] = set()
    for digest, path in index.matching(body.prefixes):
        if state.allowed(caller, "read", path):
            hashes.add(digest)
            paths.add(path)
    for path in sorted(paths):
        await state.audit(caller, "hash-lookup", path, "allowed", detail="value hash returned")
    if not paths:
        await state.audit(
            caller, "hash-lookup", "", "allowed", detail=f"{len(body.prefixes)} prefixes, no match"
        )
    return {"algorithm": "sha256", "hashes": sorted(hashes)}
