"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path).

One wrapper does the jobs every request needs: a request id, the body-size
limit (413 before the app sees the body, chunked or not), a check that the
body is Unicode text (no invalid UTF-8, no lone surrogate), and per-route
metrics labelled by route template, so ``/v1/secrets/{path:path}`` is one
series, not one per secret.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secretsd.server.errors import error_response
from secretsd.server.metrics import Metrics

__all__ = ["RequestMiddleware"]


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        scope["secretsd.request_id"] = request_id
        status = 500
        limit = self.max_body_bytes

        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(scope, send, limit, request_id)
            self._observe(scope, 413, started)
            return

        if scope.get("method") not in _NO_BODY:
            # Read the whole (bounded) body first: a chunked body over the limit is a 413
            # here, not a parse error inside the framework, and it is checked once.
            try:
                body, disconnected = await _read_body(receive, limit)
            except _BodyTooLarge:
                await self._too_large(scope, send, limit, request_id)
                self._observe(scope, 413, started)
                return
            if disconnected:
                return
            problem = None if _console_upload(scope) else body_problem(body)
            if problem is not None:
                response = error_response(
                    400, "invalid_input", problem, headers={"x-request-id": request_id}
                )
                await response(scope, _empty_receive, send)
                self._observe(scope, 400, started)
                return
            receive = _replay(body, receive)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, send, limit, request_id)
            status = 413
        finally:
            self._observe(scope, status, started)

    async def _too_large(self, scope: Scope, send: Send, limit: int, request_id: str) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is over the limit of {limit} bytes; send less per request "
            "(or raise SECRETSD_MAX_BODY_BYTES)",
            headers={"x-request-id": request_id},
        )
        await response(scope, _empty_receive, send)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        key = (template, scope.get("method", ""), status)
        children = self._children.get(key)
        if children is None:  # labels() locks and builds a key: bind each series once
            children = (
                self.metrics.requests.labels(key[0], key[1], str(status)),
                self.metrics.latency.labels(key[0], key[1]),
            )
            if len(self._children) < 4096:
                self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
# A JSON escape of a UTF-16 surrogate (not preceded by another backslash).
_SURROGATE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body (or _BodyTooLarge past ``limit``), and whether the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body to the app once, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _console_upload(scope: Scope) -> bool:
    """A file sent to the web console (multipart): raw bytes by design, not JSON text.

    The console reads the file and calls the API with JSON (binary values in
    base64), which passes the UTF-8 check then; the size limit applies to both.
    """
    if not str(scope.get("path", "")).startswith("/ui/"):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).lower().startswith(b"multipart/form-data")
    return False


def body_problem(body: bytes) -> str | None:
    """Why a request body cannot be taken as Unicode text, or None.

    Python's JSON decoder lets lone UTF-16 surrogates through (raw, through
    ``surrogatepass``, or as ``\\ud800`` escapes); they cannot be encoded
    again, so they would be stored as U+FFFD or fail the audit record.
    """
    if not body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            f"the body is not valid UTF-8 (byte {error.start}); send UTF-8 JSON, "
            "with binary values base64-encoded and listed in binary_keys"
        )
    if _SURROGATE_ESCAPE.search(body) is None:
        return None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not valid JSON: the framework says so, with the standard message
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        return None
    except UnicodeEncodeError:
        return (
            "the body contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
            "pair), which is not Unicode text; send valid characters"
        )
    return None


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _incoming_request_id(scope: Scope) -> str | None:
    raw = _header(scope, b"x-request-id")
    if raw is None:
        return None
    text = raw.decode("latin-1")
    if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
        return text
    return None
