"""The web console at ``/ui``: sign-in/out and the sub-application that holds the pages.

Mounted on the API's own FastAPI app (:func:`mount_console`). Why server-side
templates with htmx: the team writes Python; the pages are Jinja2 (autoescaped)
and htmx swaps server-rendered fragments, so there is no front-end build, and
the two vendored files (htmx, uPlot for the audit chart) ship in the package:
nothing is fetched from a CDN and ``pip install`` is all it takes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from secretsd.console import (
    access_pages,
    audit_pages,
    leaks_pages,
    plans_pages,
    secrets_pages,
)
from secretsd.console.session import (
    ApiError,
    ConsoleApi,
    clear_session,
    same_origin,
    set_session,
)
from secretsd.console.web import (
    HERE,
    MutationDep,
    SecurityHeaders,
    SignInRequired,
    StaleForm,
    hx_redirect,
    render,
    settings,
)

__all__ = ["create_console", "mount_console"]

log = logging.getLogger(__name__)
router = APIRouter()
MAX_FIELD = 4096


@router.get("/", include_in_schema=False)
async def home() -> Response:
    return RedirectResponse("/ui/secrets", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", error="")


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


def session_ttl(request: Request) -> int:
    """``SECRETSD_CONSOLE_SESSION_TTL`` (seconds) from the settings of the API app."""
    return settings(request).console_session_ttl


def _remaining(answer: Any, ceiling: int) -> int:
    """``ceiling``, cut to a token answer's remaining ``ttl`` (0 or absent: no expiry)."""
    left = answer.get("ttl") if isinstance(answer, dict) else None
    if isinstance(left, int) and not isinstance(left, bool) and left > 0:
        return min(ceiling, left)
    return ceiling


async def _mint(user: ConsoleApi, ceiling: int) -> tuple[str, int, str]:
    """A short-lived child of the presented token: (token, ttl, note).

    The child lives ``ceiling`` seconds at most and never past the presented
    token (the API also ties a child's expiry to its creator's); the cookie
    lasts as long as the token it holds.
    """
    me = await user.json("GET", "/v1/auth/tokens/self")
    ttl = _remaining(me, ceiling)
    try:
        issued = await user.json(
            "POST",
            "/v1/auth/tokens",
            json={
                "policies": me["policies"],
                "ttl": ttl,
                "max_ttl": ttl,
                "renewable": False,
                "display_name": f"console:{me.get('display_name') or me['accessor']}"[:200],
                "meta": {"console": "session", "parent": str(me["accessor"])},
            },
        )
    except ApiError as error:
        if error.status != 403:
            raise
        # This token may not issue tokens: the session uses it as it is, and
        # signing out forgets it without revoking the caller's own token.
        return user.token or "", ttl, "direct"
    return str(issued["token"]), _remaining(issued, ttl), "minted"


@router.post("/login")
async def login(request: Request) -> Response:
    if not same_origin(request):
        return render(request, "login.html", status_code=403, error="cross-site sign-in refused")
    form = await request.form()
    api_app = request.app.state.api_app
    ceiling = session_ttl(request)
    try:
        if _field(form, "method") == "approle":
            anonymous = ConsoleApi(api_app, request, None)
            issued = await anonymous.json(
                "POST",
                "/v1/auth/approle/login",
                json={"role_id": _field(form, "role_id"), "secret_id": _field(form, "secret_id")},
            )
            token = str(issued["token"])
            ttl = _remaining(issued, ceiling)
        else:
            given = _field(form, "token")
            if not given:
                return render(request, "login.html", status_code=400, error="enter a token")
            token, ttl, _ = await _mint(ConsoleApi(api_app, request, given), ceiling)
    except ApiError as error:
        return render(request, "login.html", status_code=error.status, error=error.message)
    response = RedirectResponse("/ui/secrets", status_code=303)
    set_session(response, request, token, ttl)
    return response


@router.post("/logout")
async def logout(ctx: MutationDep) -> Response:
    try:
        me = await ctx.api.json("GET", "/v1/auth/tokens/self")
        if (me.get("meta") or {}).get("console") == "session" or me.get("method") == "approle":
            await ctx.api.call("POST", "/v1/auth/tokens/revoke-self")
    except ApiError:
        pass  # already dead: signing out still clears the cookie
    response = hx_redirect("/ui/login") if ctx.request.headers.get("hx-request") else None
    if response is None:
        response = RedirectResponse("/ui/login", status_code=303)
    clear_session(response, ctx.request)
    return response


def create_console(api_app: Any) -> FastAPI:
    """The console as its own ASGI app; ``api_app`` is the API it calls in process."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.api_app = api_app

    async def sign_in(request: Request, _error: Exception) -> Response:
        if request.headers.get("hx-request"):
            response = hx_redirect("/ui/login")
        else:
            response = RedirectResponse("/ui/login", status_code=303)
        clear_session(response, request)
        return response

    async def stale(request: Request, _error: Exception) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            message="This form is stale or came from another site; reload the page and retry.",
        )

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        if error.status == 401:
            return await sign_in(request, error)
        return render(request, "error.html", status_code=error.status, message=error.message)

    async def bad_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        where = ", ".join(".".join(map(str, e.get("loc", ()))) for e in error.errors()[:3])
        return render(
            request, "error.html", status_code=400, message=f"this address is malformed ({where})"
        )

    console.add_exception_handler(RequestValidationError, bad_request)
    console.add_exception_handler(SignInRequired, sign_in)
    console.add_exception_handler(StaleForm, stale)
    console.add_exception_handler(ApiError, api_error)
    console.include_router(router)
    for module in (secrets_pages, audit_pages, access_pages, leaks_pages, plans_pages):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    console.add_middleware(SecurityHeaders)
    return console


def mount_console(app: FastAPI) -> None:
    """Serve the console at ``/ui`` on ``app`` itself."""
    app.mount("/ui", create_console(app), name="console")
