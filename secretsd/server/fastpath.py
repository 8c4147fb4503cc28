"""The hot path below the framework: ``GET /v1/secrets/{path}`` without FastAPI's machinery.

Reading a secret is the call services make most, and FastAPI's per-request
machinery (routing, dependency solving, validation) costs more than the work
itself. This ASGI middleware takes every plain read whose token is already
known to this worker (a fresh identity in the authenticator's cache) and runs
the very same read decision as the route (:func:`secretsd.server.reads.answer`:
authorise → read → audit → respond), denials, misses and errors included,
so a miss costs one Vault read, not two. It only differs in how it gets
there: no routing, no dependency solving.

What it does not take falls through to the route *before* anything is read:
a token this worker must look up, a long-poll, any query but ``version=N``,
an invalid or reserved path (whose 400 the route owns).

It sits inside :class:`~secretsd.server.middleware.RequestMiddleware`, so
request ids, metrics and response headers added there apply to both paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from secretsd.errors import SecretsdError
from secretsd.ref import is_valid_path
from secretsd.server import reads
from secretsd.server.deps import client_address, request_id
from secretsd.server.errors import secretsd_error_response
from secretsd.server.schemas import RESERVED_TOP
from secretsd.server.state import Caller

if TYPE_CHECKING:
    from secretsd.server.state import AppState

__all__ = ["FastReadMiddleware"]

_PREFIX = "/v1/secrets/"
_ROUTE = "/v1/secrets/{path:path}"
_VERSION_QUERY = re.compile(rb"version=([1-9][0-9]{0,17})")


@dataclass(frozen=True, slots=True)
class _RouteLabel:
    """Stands in for the route in ``scope["route"]``: metrics only read its template."""

    path: str


_ROUTE_LABEL = _RouteLabel(_ROUTE)


class FastReadMiddleware:
    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.answered = 0  # requests this path answered itself (tests compare both paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.enabled
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(_PREFIX)
            and await self._try(scope, receive, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _try(self, scope: Scope, receive: Receive, send: Send) -> bool:
        state: AppState | None = getattr(scope["app"].state, "secretsd", None)
        if state is None:
            return False
        query = scope.get("query_string", b"")
        version: int | None = None
        if query:
            match = _VERSION_QUERY.fullmatch(query)
            if match is None:
                return False
            version = int(match.group(1))
        path = scope["path"][len(_PREFIX) :]
        if not is_valid_path(path) or path.split("/", 1)[0] == RESERVED_TOP:
            return False
        token = etag = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
            elif name == b"if-none-match":
                etag = value
        if not token.startswith((b"Bearer ", b"bearer ")):
            return False
        identity = state.authenticator.peek(token[7:].strip().decode("latin-1"))
        if identity is None:
            return False
        request = Request(scope)  # the route's own helpers say who and where from
        caller = Caller(identity, client_address(request), request_id(request))
        scope["route"] = _ROUTE_LABEL  # RequestMiddleware's metrics label it like the route
        known = reads.parse_if_none_match(etag.decode("latin-1")) if etag else None
        try:
            response = await reads.answer(state, caller, path, version, known=known)
        except SecretsdError as error:
            response = secretsd_error_response(error)
        # What Response.__call__ sends, without its extra awaits.
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        self.answered += 1
        return True
