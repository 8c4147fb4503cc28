"""Shared plumbing of the console's pages: templates, the session dependency, headers.

Every page answer carries a strict Content-Security-Policy (scripts, styles,
images and fetches from this origin only, no inline script, no framing) and
``Cache-Control: no-store``, so a revealed value never lands in a cache or in
the back/forward history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secretsd.config import Settings
from secretsd.console.session import COOKIE, ConsoleApi, csrf_ok, csrf_token, same_origin

__all__ = [
    "CSP",
    "Ctx",
    "MutationDep",
    "SessionDep",
    "SignInRequired",
    "StaleForm",
    "read_upload",
    "render",
    "settings",
    "templates",
    "upload_limit",
]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """Pure ASGI middleware: the console's headers on every answer under /ui."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in HEADERS
                ]
                raw += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignInRequired(Exception):
    """No (live) session: send the browser to the sign-in page."""


class StaleForm(Exception):
    """A state change without this session's CSRF token, or from another site."""


@dataclass
class Ctx:
    """One request's session: the API as the signed-in token, and the CSRF token."""

    request: Request
    api: ConsoleApi
    csrf: str
    me: dict[str, Any] = field(default_factory=dict)


def settings(request: Request) -> Settings:
    """The server's settings (from the one config loader), via the API app's state."""
    loaded: Settings = request.app.state.api_app.state.secretsd.settings
    return loaded


def _api_app(request: Request) -> ASGIApp:
    app: ASGIApp = request.app.state.api_app
    return app


async def get_session(request: Request) -> Ctx:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise SignInRequired
    return Ctx(request, ConsoleApi(_api_app(request), request, token), csrf_token(token))


async def get_mutation(request: Request) -> Ctx:
    ctx = await get_session(request)
    if not same_origin(request) or not await csrf_ok(request, ctx.api.token or ""):
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            await (await request.form()).close()  # uploaded files, unread
        raise StaleForm
    return ctx


SessionDep = Annotated[Ctx, Depends(get_session)]
MutationDep = Annotated[Ctx, Depends(get_mutation)]


def render(
    request: Request,
    template: str,
    ctx: Ctx | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> Response:
    """Render a page or fragment (autoescaped) with the session's CSRF token."""
    values.setdefault("csrf", ctx.csrf if ctx else "")
    values.setdefault("section", "")
    response: HTMLResponse = templates.TemplateResponse(
        request, template, values, status_code=status_code, headers=headers
    )
    return response


def hx_redirect(url: str) -> Response:
    """Navigate the whole page after an htmx request (a plain 303 for a form post)."""
    return Response(status_code=200, headers={"HX-Redirect": url})


#: Room in a request for everything but one uploaded file (multipart headers, CSRF field,
#: or the JSON around a base64 value).
UPLOAD_ENVELOPE = 4096


def upload_limit(request: Request) -> int:
    """The largest file the console accepts: every request body (the upload included) is
    bounded by ``SECRETSD_MAX_BODY_BYTES`` before any page sees it."""
    return settings(request).max_body_bytes - UPLOAD_ENVELOPE


def render_upload_page(
    ctx: Ctx, template: str, section: str, *, error: str = "", **values: Any
) -> Response:
    """A page that takes one uploaded file: it shows the upload limit, and a refused upload
    (``error``) answers 400 with the page and the reason, so every such page behaves alike."""
    return render(
        ctx.request,
        template,
        ctx,
        section=section,
        max_file=upload_limit(ctx.request),
        error=error,
        status_code=400 if error else 200,
        **values,
    )


def _size(limit: int) -> str:
    return f"{limit} bytes"


_Parsed = TypeVar("_Parsed")


class UploadRefused(Exception):
    """An uploaded file that is not what the page reads; the message says why and how to fix it."""


async def parse_upload(
    ctx: Ctx, field: str, parse: Callable[[bytes], _Parsed]
) -> tuple[_Parsed | None, str]:
    """The form's file ``field`` read within the body limit and parsed, or None and the
    message the page shows (one path for every page that takes a file)."""
    form = await ctx.request.form()
    raw, error = await read_upload(form.get(field), upload_limit(ctx.request), field)
    if raw is None:
        return None, error
    try:
        return parse(raw), ""
    except UploadRefused as problem:
        return None, str(problem)


async def read_upload(upload: object, limit: int, what: str) -> tuple[bytes | None, str]:
    """An uploaded file's bytes, or None and why (no file, or more than ``limit`` bytes)."""
    if not isinstance(upload, UploadFile):
        return None, f"choose a {what} file"
    if not upload.filename:
        await upload.close()
        return None, f"choose a {what} file"
    try:
        raw = await upload.read(limit + 1)
    finally:
        await upload.close()
    if len(raw) > limit:
        return None, (
            f"the {what} file is larger than {_size(limit)}; choose a smaller one "
            "(SECRETSD_MAX_BODY_BYTES sets the limit)"
        )
    return raw, ""
