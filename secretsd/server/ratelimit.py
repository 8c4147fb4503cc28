"""Limits on failed authentication, per client address and per role (the ``limits`` library).

Only failures count: a valid token is never refused (a known one skips the
check; an unknown one is limited only once its lookup fails), so
authenticated reads stay on the fast path while a flood of bad logins is
answered with a cheap 429 (and a ``Retry-After``) instead of a database
round trip, a thread and a hash each. Three budgets:

- bad tokens per client address (default 30 a minute): then that address's
  unknown tokens get 429 (valid ones still work);
- failed logins per (client address, role) (the same setting): then that
  address's logins to that role get 429, while its logins to other roles go
  on, as Vault keys its lockout per role and alias, so a flood against one
  role never locks an honest client of another role out of a shared address
  (logins naming no existing role share one budget per address);
- failed logins per role (an AppRole ``role_id`` or a Kubernetes role; default
  120 a minute, from any address), like Vault's lockout.

For logins the check runs before the work (the gate below reads the role from
the body, and knows which roles exist from known_roles.py), so a limited
login, to a real role or a made-up one, costs no database read or secret-id
hash.

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

import json
import math
import time
import uuid
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secretsd.errors import RateLimited
from secretsd.server.abandoned import replay
from secretsd.server.errors import error_response

if TYPE_CHECKING:
    from secretsd.server.state import AppState

__all__ = ["AUDIT_EVERY", "LOGIN_PATHS", "AuthLimiter", "LoginGate"]

#: Seconds between two audit records of the refusals of one client.
AUDIT_EVERY = 10.0
_REFUSALS_MAX = 10_000


class AuthLimiter:
    """Failure budgets: a client's bad tokens, a client's logins to one role, a role's logins.

    Logins are keyed by (client address, role), as Vault keys its user lockout
    by role and alias: a flood against role X from address A uses up A's
    budget for X only, so a correct login to role Y from A (a CI runner and an
    attacker behind one NAT, or two jobs on one host) still gets through.
    Logins naming no existing role share one budget per client (``role=""``),
    so cycling through made-up role ids is limited too.
    """

    def __init__(self, per_client: str, per_role: str, storage: str = "memory://") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage))
        self._per_client = parse_many(per_client) if per_client else []
        self._per_role = parse_many(per_role) if per_role else []
        self._refusals: dict[str, tuple[float, int]] = {}

    def check(self, client: str) -> None:
        """Raise RateLimited when ``client`` has no bad-token failures left in its window."""
        self._check(self._per_client, ("client", client), f"from {client or 'this client'}")

    def failed(self, client: str) -> None:
        """Count one bad token against the client."""
        for item in self._per_client:
            self._limiter.hit(item, "client", client)

    def check_login(self, client: str, method: str, role: str) -> None:
        """Raise RateLimited when ``client``'s logins to ``role`` (or the role's) are used up.

        ``role`` is the AppRole ``role_id`` or the Kubernetes role as the login
        names it; ``""`` is the shared budget of logins naming no existing role.
        """
        named = "this role" if role else "roles that do not exist"
        where = f"from {client or 'this client'} for {named}"
        self._check(self._per_client, ("login", client, method, role), where)
        if role:
            self._check(self._per_role, ("role", method, role), "for this role")

    def failed_login(self, client: str, method: str, role: str, *, known: bool = True) -> None:
        """Count one failed login against (client, role) and the role.

        A role that does not exist (``known=False``) counts against the
        client's shared unknown-role budget instead of its own.
        """
        for item in self._per_client:
            self._limiter.hit(item, "login", client, method, role if known else "")
        for item in self._per_role:
            self._limiter.hit(item, "role", method, role)

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

    def _check(self, items: list[RateLimitItem], key: tuple[str, ...], where: str) -> None:
        for item in items:
            if not self._limiter.test(item, *key):
                reset = self._limiter.get_window_stats(item, *key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise RateLimited(
                    f"too many failed authentications {where} (limit {item}); retry in "
                    f"{wait} s with valid credentials",
                    retry_after=wait,
                )


#: Login routes: their method name and the body field naming the role.
LOGIN_PATHS = {
    "/v1/auth/approle/login": ("approle", "role_id"),
    "/v1/auth/kubernetes/login": ("kubernetes", "role"),
}
#: Bodies larger than this are not peeked at (the route refuses them; a JWT is <= 16 KiB).
_PEEK_BYTES = 64 * 1024
_ROLE_MAX = 128


class LoginGate:
    """Refuse logins over their limit before the framework parses anything.

    The same check as the login routes make, done first so that a flood
    costs a small JSON parse and a small answer per attempt, not a request
    through FastAPI. The limit is per (client, role), so the gate reads the
    body (bounded) to learn the role, then hands it on unchanged. A body it
    cannot read a role from goes on to the route, which refuses it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        login = LOGIN_PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        state: AppState | None = getattr(scope["app"].state, "secretsd", None) if login else None
        if login is None or state is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        method, field = login
        messages, body = await _peek_body(receive)
        receive = replay(messages, receive)
        role = _role_of(body, field)
        peer = scope.get("client")
        client = peer[0] if peer else ""
        try:
            if role is not None:
                # A role that does not exist is on the client's made-up-role budget.
                known = state.login_roles.may_exist(method, role)
                state.limiter.check_login(client, method, role if known else "")
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


async def _peek_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's first messages and its whole body, or None past _PEEK_BYTES."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        body += message.get("body", b"")
        if len(body) > _PEEK_BYTES:
            return messages, None
        if not message.get("more_body", False):
            return messages, bytes(body)


def _role_of(body: bytes | None, field: str) -> str | None:
    """The role a login body names, or None when it names none the route would accept."""
    if body is None:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    role = parsed.get(field) if isinstance(parsed, dict) else None
    return role if isinstance(role, str) and 0 < len(role) <= _ROLE_MAX else None
