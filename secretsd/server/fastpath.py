"""The hot path, answered below the framework: a successful ``GET /v1/secrets/{path}``.

Reading a secret is the call services make most, and FastAPI's per-request
machinery (routing, dependency solving, validation) costs more than the work
itself. This ASGI middleware answers exactly the happy case — a known, fresh
token; a valid path; a policy that allows the read; a read that succeeds
(from the cache, or from Vault on a miss); no long-poll and no
``If-None-Match`` — with the same checks, the same audit record (awaited:
fail closed) and the same response bytes as the FastAPI route. Anything else
(an unknown token, a denial, a failed read) falls through to the route,
which owns every error message and its audit record, so the two paths
cannot disagree about failures.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from secretsd.bounds import MAX_VERSION
from secretsd.errors import SecretsdError
from secretsd.ref import is_valid_path
from secretsd.server.errors import error_response
from secretsd.server.schemas import RESERVED_TOP
from secretsd.server.state import audit_event

if TYPE_CHECKING:
    from secretsd.server.metrics import Metrics
    from secretsd.server.state import AppState

__all__ = ["FastReadMiddleware"]

_PREFIX = "/v1/secrets/"
_ROUTE = "/v1/secrets/{path:path}"
_STALE_WARNING = b'110 secretsd "Response is Stale: Vault is unavailable"'
_VERSION_QUERY = re.compile(rb"version=([1-9][0-9]{0,9})")


class FastReadMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self._ok_count = metrics.requests.labels(_ROUTE, "GET", "200")
        self._ok_latency = metrics.latency.labels(_ROUTE, "GET")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(_PREFIX)
            and await self._try(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _try(self, scope: Scope, send: Send) -> bool:
        started = time.perf_counter()
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
            if version > MAX_VERSION:
                return False  # the route refuses it with the standard 422
        path = scope["path"][len(_PREFIX) :]
        if not is_valid_path(path) or path.split("/", 1)[0] == RESERVED_TOP:
            return False
        token = request_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
            elif name == b"if-none-match":
                return False
            elif name == b"x-request-id":
                request_id = value
        if not token.startswith((b"Bearer ", b"bearer ")):
            return False
        identity = state.authenticator.peek(token[7:].strip().decode("latin-1"))
        if identity is None:
            return False
        peer = scope.get("client")
        client_host = peer[0] if peer else ""
        if not state.decide(identity.policies, "read", path):
            return False
        try:
            result = await state.secrets.read(path, version)
        except SecretsdError:
            return False  # the route reads again and owns the error message and its audit
        entry = result.entry
        rid = request_id.decode("latin-1") if _good_request_id(request_id) else os.urandom(16).hex()
        try:
            await state.audit_log.record(
                audit_event(
                    identity,
                    action="read",
                    outcome="allowed",
                    path=path,
                    version=entry.secret.version,
                    detail="stale" if result.stale else "",
                    client=client_host,
                    request_id=rid,
                )
            )
        except SecretsdError as error:
            response = error_response(error.http_status, error.code, error.message)
            await response(scope, _no_body, send)
            return True
        state.metrics.audit_records.inc()
        body = entry.body
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"etag", b'"%d"' % entry.secret.version),
            (b"cache-control", b"no-store"),
            (b"x-request-id", rid.encode("latin-1")),
        ]
        if result.stale:
            headers += [(b"x-secretsd-stale", b"true"), (b"warning", _STALE_WARNING)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._ok_count.inc()
        self._ok_latency.observe(time.perf_counter() - started)
        return True


def _good_request_id(raw: bytes) -> bool:
    return 0 < len(raw) <= 64 and all(c.isalnum() or c in "-_." for c in raw.decode("latin-1"))


async def _no_body() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}
