"""Writes whose client has already gone are not applied.

When every worker is stuck (a full disk, a frozen Vault, a restart loop) the
kernel still accepts connections and buffers their requests. A client that
gives up closes its connection, but the request stays in the buffer, and the
next worker to run would read it and apply it: a write the client was told
nothing about, minutes later, perhaps after the client retried it elsewhere.

So before a write reaches the app, this middleware reads its whole body and
checks whether the client has hung up; if so the write is dropped (and
logged). A write whose client disconnects *while* it is being processed
completes: its outcome is recorded in the audit log, and the client learns it
with a read or a check-and-set write.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AbandonedWriteGuard", "replay"]

log = logging.getLogger(__name__)

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class AbandonedWriteGuard:
    """ASGI middleware: drop a mutating request whose client disconnected before it ran."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client is gone mid-body
                _dropped(scope)
                return
            buffered.append(message)
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
            if size > self.max_body_bytes:  # too big: let the size check answer it
                await self.app(scope, replay(buffered, receive), send)
                return
        await asyncio.sleep(0)  # let the event loop read a pending EOF
        if await _client_gone(receive):
            _dropped(scope)
            return
        await self.app(scope, replay(buffered, receive), send)


async def _client_gone(receive: Receive) -> bool:
    """Whether ``http.disconnect`` is already waiting (never blocks)."""
    message: Message | None = None
    with anyio.CancelScope() as scope:
        scope.cancel()
        message = await receive()
    return message is not None and message["type"] == "http.disconnect"


def replay(buffered: list[Message], receive: Receive) -> Receive:
    """A receive that gives the ``buffered`` messages back first, then the rest of the request."""
    pending = list(buffered)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _dropped(scope: Scope) -> None:
    log.warning(
        "dropped %s %r: the client disconnected before it was processed, so it was not applied",
        scope["method"],
        scope.get("path", ""),
    )
