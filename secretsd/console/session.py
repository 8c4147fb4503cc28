"""The console's session and its one way into secretsd: the HTTP API, in process.

Why in process over HTTP: every console action then passes the very same
routes, authorising dependencies, policies and audit as the CLI or SDK; the
console holds no authority of its own (no second authorisation path). httpx's
ASGI transport calls the application object directly, with the browser's
address as the client, so AppRole CIDR bindings and audit records see the
real caller.

The session is a cookie (HttpOnly, SameSite=Strict, Path=/ui, Secure under
TLS) holding a short-lived secretsd token the console minted at sign-in. The
CSRF token is derived from the session token (a keyed digest an attacker
cannot compute without the HttpOnly cookie), sent back by every state
change as a header (htmx) or form field, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

__all__ = [
    "COOKIE",
    "ApiError",
    "ConsoleApi",
    "clear_session",
    "csrf_ok",
    "csrf_token",
    "set_session",
]

COOKIE = "secretsd_console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


@dataclass
class ApiError(Exception):
    """An API answer >= 400, carrying the API's own message (never a value)."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"secretsd-console-csrf\x00" + session_token.encode()).hexdigest()


async def csrf_ok(request: Request, session_token: str) -> bool:
    """True if a state-changing request carries this session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else ""
    return bool(sent) and hmac.compare_digest(sent, csrf_token(session_token))


def same_origin(request: Request) -> bool:
    """Refuse cross-site posts outright (browsers send Sec-Fetch-Site / Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin == f"{request.url.scheme}://{request.url.netloc}"
    return True


def set_session(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class ConsoleApi:
    """Calls the secretsd API of ``app`` in process, as the session's token."""

    def __init__(self, app: ASGIApp, request: Request, token: str | None) -> None:
        self._app = app
        self._request = request
        self.token = token

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        client_host = self._request.client.host if self._request.client else "127.0.0.1"
        client_port = self._request.client.port if self._request.client else 0
        transport = httpx.ASGITransport(app=self._app, client=(client_host, client_port))
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        base = f"{self._request.url.scheme}://{self._request.url.netloc}"
        async with httpx.AsyncClient(
            transport=transport, base_url=base, headers=headers, timeout=60
        ) as client:
            yield client

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with self._client() as client:
            response = await client.request(method, url, **kwargs)
        if response.status_code >= 400:
            code, message = "error", f"the API answered {response.status_code}"
            try:
                error = response.json().get("error") or {}
                code = str(error.get("code") or code)
                message = str(error.get("message") or message)
            except (ValueError, AttributeError):
                pass
            raise ApiError(response.status_code, code, message)
        return response

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.call(method, url, **kwargs)
        return response.json() if response.content else None
