"""FastAPI dependencies: the app state and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from secretsd.errors import RateLimited, SecretsdError, Unauthenticated
from secretsd.server.state import AppState, Caller

__all__ = [
    "AUDIT_MARKER",
    "CallerDep",
    "StateDep",
    "audited_by",
    "client_address",
    "request_id",
]

#: Attribute naming how a route is audited when not by ``server.authorize.Authorize``.
AUDIT_MARKER = "__secretsd_audited_by__"
AUDITED_ELSEWHERE = frozenset({"login", "secret-decision"})
F = TypeVar("F", bound=Callable[..., Any])


def audited_by(reason: str) -> Callable[[F], F]:
    """Mark a route as authorised and audited by something other than ``Authorize``.

    ``"secret-decision"``: the secret routes' shared read/write decision
    audits it; ``"login"``: an unauthenticated login audited by
    ``AppState.audited_login``. ``tests/test_admin_audit.py`` fails on any
    ``/v1`` route with neither this marker nor the ``Authorize`` dependency.
    """
    if reason not in AUDITED_ELSEWHERE:
        raise ValueError(f"unknown audit marker {reason!r}; use one of {sorted(AUDITED_ELSEWHERE)}")

    def mark(endpoint: F) -> F:
        setattr(endpoint, AUDIT_MARKER, reason)
        return endpoint

    return mark


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
    """The authenticated caller, decided with every identity and policy change applied."""
    state = _state(request)
    await state.sync()
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
            try:
                identity = await state.authenticator.identify(token)
            except Unauthenticated:
                # Only a token that fails is limited: a valid one is never refused for
                # its neighbours' failures (a login flood from a shared address must not
                # lock honest clients out; a lookup by hash is cheap, unlike a login).
                state.limiter.check(client_address(request))
                state.limiter.failed(client_address(request))
                raise
            await state.know_policies(identity.policies)
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
