"""Limits on failed authentication, per client address and per role (the ``limits`` library).

Only failures count: a valid token is never refused (a known one skips the
check; an unknown one is limited only once its lookup fails), so
authenticated reads stay on the fast path while a flood of bad logins is
answered with a cheap 429 (and a ``Retry-After``) instead of a database
round trip, a thread and a hash each. Once a client address has used up its
failures (default 30 a minute), its further logins (and tokens that fail)
are refused until the window frees up; once a role (an AppRole ``role_id`` or
a Kubernetes role) has (default 120 a minute, from any address), logins to it
are, like Vault's lockout. For logins the check runs before the work, so a
limited login costs no database read or secret-id hash.

Refusals are audited, but not one record each: the first refusal of a client
in every ``AUDIT_EVERY`` seconds is recorded with the number refused since the
last record ("rate limited (312 more)"), so a flood cannot turn into a flood
of audit writes, which every honest read waits behind (fail-closed audit).

Counters live in each worker's memory by default (``memory://``): with N
workers a client gets up to N times the limit. ``SECRETSD_RATE_LIMIT_STORAGE``
takes any `limits` storage URI (``redis://...``, ``memcached://...``) to share
them across workers and replicas.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from secretsd.errors import RateLimited
from secretsd.server.errors import error_response

if TYPE_CHECKING:
    from secretsd.server.state import AppState

__all__ = ["AUDIT_EVERY", "LOGIN_PATHS", "AuthLimiter", "LoginGate"]

#: Seconds between two audit records of the refusals of one client.
AUDIT_EVERY = 10.0
_REFUSALS_MAX = 10_000


class AuthLimiter:
    def __init__(self, per_client: str, per_role: str, storage: str = "memory://") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage))
        self._per_client = parse_many(per_client) if per_client else []
        self._per_role = parse_many(per_role) if per_role else []
        self._refusals: dict[str, tuple[float, int]] = {}

    def check(self, client: str, role: str | None = None) -> None:
        """Raise RateLimited when ``client`` (or ``role``) has no failures left in its window."""
        self._check(self._per_client, "client", client, f"from {client or 'this client'}")
        if role is not None:
            self._check(self._per_role, "role", role, "for this role")

    def failed(self, client: str, role: str | None = None) -> None:
        """Count one failed authentication against the client and the role."""
        for item in self._per_client:
            self._limiter.hit(item, "client", client)
        if role is not None:
            for item in self._per_role:
                self._limiter.hit(item, "role", role)

    def refusal_detail(self, client: str, detail: str) -> str | None:
        """The audit detail for a refusal of ``client``, or None when it is folded into the next."""
        now = time.monotonic()
        last, folded = self._refusals.get(client, (0.0, 0))
        if now - last < AUDIT_EVERY:
            self._refusals[client] = (last, folded + 1)
            return None
        if len(self._refusals) >= _REFUSALS_MAX:
            self._refusals.clear()
        self._refusals[client] = (now, 0)
        return f"{detail} ({folded} more)" if folded else detail

    def _check(self, items: list[RateLimitItem], kind: str, key: str, where: str) -> None:
        for item in items:
            if not self._limiter.test(item, kind, key):
                reset = self._limiter.get_window_stats(item, kind, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise RateLimited(
                    f"too many failed authentications {where} (limit {item}); retry in "
                    f"{wait} s with valid credentials",
                    retry_after=wait,
                )


#: Login routes and their method name, for the gate below.
LOGIN_PATHS = {
    "/v1/auth/approle/login": "approle",
    "/v1/auth/kubernetes/login": "kubernetes",
}


class LoginGate:
    """Refuse logins from a client over its limit before the framework parses anything.

    The same check as the login routes make (which also check the role, once
    the body names it), done first so that a flood costs a dictionary lookup
    and a small answer per attempt, not a request through FastAPI.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = LOGIN_PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if method is None:
            await self.app(scope, receive, send)
            return
        state: AppState | None = getattr(scope["app"].state, "secretsd", None)
        if state is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        client = peer[0] if peer else ""
        try:
            state.limiter.check(client)
        except RateLimited as limited:
            request_id = uuid.uuid4().hex
            detail = state.limiter.refusal_detail(client, f"{method}: rate limited")
            if detail is not None:
                await state.audit(
                    None,
                    "login",
                    f"sys/{method}",
                    "denied",
                    detail=detail,
                    client=client,
                    request_id=request_id,
                )
            response = error_response(
                limited.http_status,
                limited.code,
                limited.message,
                headers={"Retry-After": str(limited.retry_after), "x-request-id": request_id},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
