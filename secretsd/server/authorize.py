"""The one authorising dependency of every admin route: decide, audit, then act.

Admin routes do not check policies or write audit records themselves; they
declare what they need::

    @router.put("/v1/policies/{name}")
    async def write_policy(name: str, ..., admin: Admin = authorize(
        "admin", "sys/policies/{name}", "policy-write", mutates=True)): ...

and :class:`Authorize` (a FastAPI dependency) does, in order:

1. authenticate the caller (:func:`secretsd.server.deps.get_caller`, which
   also brings this worker up to date with identity and policy changes);
2. decide ``capability`` on the path (the template is filled from the path
   parameters); a denial is audited and answered 403;
3. audit the allowed call *before* the handler runs (fail closed: if the
   audit log cannot record it, nothing happens), as secret writes do;
4. after the handler: for a mutation, a second record that it was done (with
   the path the handler names, e.g. the new token's accessor); on any error,
   a record with outcome ``error`` (``denied`` for a refused grant).

Routes audited another way carry an explicit marker, :func:`audited_by`:
``"login"`` (unauthenticated logins, audited by ``AppState.audited_login``)
and ``"secret-decision"`` (the secret routes, audited by the read/write
decision the secret routes share). ``tests/test_admin_audit.py`` walks
``app.routes`` and fails on any ``/v1`` route that has neither.

Grants are checked here too (:meth:`Admin.check_grant`, :meth:`Admin.check_outranks`):
nobody grants, by any route, what their own policies do not allow
(:mod:`secretsd.grants`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from secretsd.errors import Forbidden, SecretsdError, ValidationFailed
from secretsd.grants import ALL_USABLE, not_held
from secretsd.policy import Policy, Rule
from secretsd.server.deps import AUDIT_MARKER, audited_by, get_caller, get_state
from secretsd.server.state import AppState, Caller

__all__ = ["AUDIT_MARKER", "Admin", "Authorize", "audited_by", "authorize"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class Admin:
    """What a handler gets: the caller, the audited path, and the grant checks."""

    def __init__(self, state: AppState, caller: Caller, path: str, action: str) -> None:
        self.state = state
        self.caller = caller
        self.path = path
        self.action = action
        self.done_path = path
        self.done_detail = ""

    def done(self, path: str | None = None, detail: str = "") -> None:
        """Name what the call created or changed, for the after-record."""
        if path is not None:
            self.done_path = path
        self.done_detail = detail

    def policies(self, names: Iterable[str], *, must_exist: bool = True) -> list[Policy]:
        """The named policies; a name that does not exist is refused (or skipped)."""
        found: list[Policy] = []
        for name in dict.fromkeys(names):
            policy = self.state.policies.get(name)
            if policy is not None:
                found.append(policy)
            elif must_exist:
                raise ValidationFailed(
                    f"policy {name!r} does not exist; create it first "
                    f"(secretsd policy write {name} FILE, or PUT /v1/policies/{name}), "
                    "then grant it"
                )
        return found

    def held(self) -> list[Rule]:
        return self.state.policy_set(self.caller.identity.policies).rules

    def refuse(self, what: str, beyond: list[str], *, grants: bool = True) -> Forbidden:
        shown = "; ".join(beyond[:3]) + (f"; and {len(beyond) - 3} more" if len(beyond) > 3 else "")
        mine = ", ".join(self.caller.identity.policies) or "none"
        if grants:
            return Forbidden(
                f"{what} would grant more than your own policies ({mine}) allow: {shown}; "
                "nobody may grant what they do not hold: ask an admin"
            )
        return Forbidden(
            f"{what} concerns grants beyond your own policies ({mine}): {shown}; only a token "
            "that holds all it holds may change, use or end it: ask an admin"
        )

    def check_grant(self, names: Iterable[str], what: str) -> None:
        """Refuse unknown policies, and policies granting beyond the caller's own."""
        beyond = not_held(self.held(), self.policies(names))
        if beyond:
            raise self.refuse(what, beyond)

    def check_outranks(self, names: Iterable[str], what: str) -> None:
        """The caller holds everything ``names`` grant (to change or end what holds them)."""
        beyond = not_held(self.held(), self.policies(names, must_exist=False))
        if beyond:
            raise self.refuse(what, beyond, grants=False)

    def check_rules(self, policy: Policy, replaced: Policy | None, what: str) -> None:
        """A policy write or delete grants its new rules and lifts the denies it drops."""
        beyond = not_held(self.held(), [policy]) if policy.rules else []
        if replaced is not None:
            kept = [r.path for r in policy.rules if "deny" in r.capabilities]
            lifted = [
                Rule(rule.path, ALL_USABLE)
                for rule in replaced.rules
                if "deny" in rule.capabilities and rule.path not in kept
            ]
            if lifted:
                lifting = Policy(f"{replaced.name} (a deny it drops)", tuple(lifted))
                beyond += not_held(self.held(), [lifting])
        if beyond:
            raise self.refuse(what, beyond)


class Authorize:
    """Dependency: authenticate, decide ``capability`` on ``path``, audit before and after."""

    def __init__(
        self,
        capability: str | None,
        path: str | Callable[[Request, Caller], str],
        action: str,
        *,
        mutates: bool = False,
    ) -> None:
        self.capability = capability  # None: any authenticated caller (its own token)
        self.path = path
        self.action = action
        self.mutates = mutates

    def resolve_path(self, request: Request, caller: Caller) -> tuple[str, bool]:
        """The ``sys/...`` path to decide and audit, and whether its parameters are sound.

        Path parameters are not validated yet here (the route does it after), so
        an unsound one (beyond a name's 64 characters of ``[A-Za-z0-9._-]``) is
        refused before any decision, recorded in a safe form.
        """
        if callable(self.path):
            return self.path(request, caller), True
        raw = {k: str(v) for k, v in request.path_params.items()}
        safe = {k: _UNSAFE.sub("_", v)[:64] for k, v in raw.items()}
        return self.path.format(**safe), safe == raw

    async def __call__(self, request: Request) -> AsyncIterator[Admin]:
        state = await get_state(request)
        caller = await get_caller(request)
        path, sound = self.resolve_path(request, caller)
        if not sound:
            await state.audit(caller, self.action, path, "error", detail="validation_failed")
            raise ValidationFailed(
                "a name in the URL is not valid; names are 1 to 64 letters, digits, '.', '_' or '-'"
            )
        if self.capability is not None and not state.allowed(caller, self.capability, path):
            await state.audit(caller, self.action, path, "denied", detail="no policy allows")
            who = caller.identity.display_name or "this token"
            raise Forbidden(
                f"{self.capability} on {path!r} is not allowed for {who}"
                f" (policies: {', '.join(caller.identity.policies) or 'none'}); ask an admin "
                "for a policy that grants it"
            )
        await state.audit(
            caller, self.action, path, "allowed", detail="requested" if self.mutates else ""
        )
        admin = Admin(state, caller, path, self.action)
        try:
            yield admin
        except Exception as error:  # recorded, then raised on unchanged
            outcome = "denied" if isinstance(error, Forbidden) else "error"
            await state.audit(caller, self.action, admin.done_path, outcome, detail=_code(error))
            raise
        if self.mutates:
            await state.audit(
                caller, self.action, admin.done_path, "allowed", detail=admin.done_detail or "done"
            )


def _code(error: Exception) -> str:
    """The error's code for the audit record (never its message: it may quote input)."""
    if isinstance(error, SecretsdError):
        return error.code
    if isinstance(error, RequestValidationError):
        return "validation_failed"
    return "internal"


def authorize(
    capability: str | None,
    path: str | Callable[[Request, Caller], str],
    action: str,
    *,
    mutates: bool = False,
) -> Any:
    """``Depends`` on :class:`Authorize`, exiting before the response is sent."""
    return Depends(Authorize(capability, path, action, mutates=mutates), scope="function")
