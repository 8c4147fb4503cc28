"""The outermost ASGI layer: who the client really is, and the headers every response carries.

Client address. ``X-Forwarded-For`` is believed only from the proxies named in
``SECRETSD_TRUSTED_PROXIES`` (addresses or CIDR networks; empty by default).
uvicorn's own default trusts the header from 127.0.0.1, which let any local
process claim to be 10.1.2.3, pass an AppRole CIDR binding and plant that
address in the audit log; ``secretsd serve`` turns uvicorn's handling off and
this layer applies uvicorn's right-to-left algorithm (the first address from
the right that is not a trusted proxy is the client) only to connections
from a configured proxy. A forwarded value that is not an IP address is
refused (400), so nothing but an address reaches a CIDR check or the audit
log's ``client`` column.

Headers. Every answer, including the fast read path's, gets
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` and a Content-Security-Policy (API answers
may load nothing; ``/docs`` only its own scripts and styles), plus
``Strict-Transport-Security`` over TLS; a header the answer sets itself (the
web console's own CSP) is left alone. Answers without their own
``Cache-Control`` get ``no-store``: token, login, resolve and secret answers
must never sit in a browser or proxy cache.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from secretsd.server.errors import error_response

__all__ = ["DOCS_ASSETS_PREFIX", "EdgeMiddleware"]

DOCS_ASSETS_PREFIX = "/docs/assets/"

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_NO_STORE = (b"cache-control", b"no-store")
# (is a docs page, over TLS) -> the headers to add, computed once.
_EXTRA = {
    (docs, tls): [
        *_COMMON,
        (b"content-security-policy", _DOCS_CSP if docs else _API_CSP),
        *([_HSTS] if tls else []),
    ]
    for docs in (False, True)
    for tls in (False, True)
}


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self._inner: ASGIApp = app
        if trusted_proxies:
            proxied = ProxyHeadersMiddleware(
                _RequireAddress(app),  # type: ignore[arg-type]
                trusted_hosts=list(trusted_proxies),
            )
            self._inner = cast(ASGIApp, proxied)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = path == "/docs" or path.startswith("/docs/")
        extra = _EXTRA[(docs, scope.get("scheme") == "https")]
        cacheable = path.startswith(DOCS_ASSETS_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name for name, _ in headers}  # ASGI header names are lower-case
                if not cacheable and b"cache-control" not in present:
                    headers.append(_NO_STORE)
                # A page that sets its own (the console's CSP) keeps it: two CSPs would both apply.
                headers += [item for item in extra if item[0] not in present]
                message["headers"] = headers  # a fresh list: the app's own stays as it was
            await send(message)

        await self._inner(scope, receive, send_with_headers)


class _RequireAddress:
    """After proxy-header handling: the client must be an IP address, nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client:
            try:
                ipaddress.ip_address(client[0])
            except ValueError:
                response = error_response(
                    400,
                    "invalid_input",
                    "X-Forwarded-For does not end in a valid client IP address; "
                    "fix the proxy's configuration",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
