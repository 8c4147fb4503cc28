"""FastAPI dependencies: the app state and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from secretsd.errors import RateLimited, SecretsdError, Unauthenticated
from secretsd.server.state import AppState, Caller

__all__ = ["CallerDep", "StateDep", "client_address", "request_id"]


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs plain ``def`` dependencies in a thread pool."""
    return _state(request)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.secretsd
    return state


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def request_id(request: Request) -> str:
    return str(request.scope.get("secretsd.request_id", ""))


async def get_caller(request: Request) -> Caller:
    state = _state(request)
    header = request.headers.get("authorization")
    try:
        if not header:
            raise Unauthenticated(
                "missing Authorization header; send 'Authorization: Bearer <token>' "
                "(the first admin token is in <data-dir>/admin-token)"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "malformed Authorization header; send 'Authorization: Bearer <token>'"
            )
        token = token.strip()
        identity = state.authenticator.peek(token)  # known good: no limit applies
        if identity is None:
            state.limiter.check(client_address(request))
            try:
                identity = await state.authenticator.identify(token)
            except Unauthenticated:
                state.limiter.failed(client_address(request))
                raise
    except SecretsdError as error:
        # Denied access attempts to secrets are audited too (no identity known); refusals
        # by the rate limiter are folded into one record per client and interval.
        detail: str | None = error.code
        if isinstance(error, RateLimited):
            detail = state.limiter.refusal_detail(client_address(request), error.code)
        if detail is not None:
            path = request.path_params.get("path", "")
            await state.audit(
                None,
                "authenticate",
                str(path),
                "denied",
                detail=detail,
                client=client_address(request),
                request_id=request_id(request),
            )
        raise
    return Caller(identity, client_address(request), request_id(request))


StateDep = Annotated[AppState, Depends(get_state)]
CallerDep = Annotated[Caller, Depends(get_caller)]
