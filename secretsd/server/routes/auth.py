"""``/v1/auth``: tokens (issue, look up, renew, revoke) and AppRole host logins.

Administration is authorised by the same policies as secrets, on paths under
the reserved ``sys`` folder: ``sys/tokens`` for other people's tokens and
``sys/approle/<role>`` for roles. Token values and secret-ids appear only in
the response that creates them; audit records name tokens by accessor.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from secretsd.auth.approle import REFUSED_MESSAGE, check_cidrs
from secretsd.auth.tokens import IssuedToken, TokenInfo
from secretsd.bounds import Count, QueryInt
from secretsd.durations import Duration, parse_duration
from secretsd.errors import Forbidden, SecretsdError
from secretsd.policy import validate_policy_name
from secretsd.server.deps import CallerDep, StateDep, client_address, request_id
from secretsd.server.state import AppState, Caller

__all__ = ["router"]

router = APIRouter(tags=["auth"])
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCreate(_Strict):
    policies: list[str] = Field(default_factory=list)
    ttl: Duration = Field(default="24h", description="0 = never expires")
    max_ttl: Duration = Field(default="768h", description="Renewals stop here")
    display_name: str = Field(default="", max_length=200)
    renewable: bool = True
    meta: dict[str, str] = Field(default_factory=dict)


class Renew(_Strict):
    increment: Duration | None = None


class RevokeByToken(_Strict):
    token: str = Field(min_length=1, max_length=512)


class RoleWrite(_Strict):
    policies: list[str] = Field(default_factory=list)
    token_ttl: Duration = Field(default="1h")
    token_max_ttl: Duration = Field(default="24h")
    bound_cidrs: list[str] = Field(default_factory=list)
    secret_id_ttl: Duration = 0
    secret_id_num_uses: Count = 0


class SecretIdCreate(_Strict):
    num_uses: Count | None = Field(default=None, description="0 = unlimited")
    ttl: Duration | None = None
    bound_cidrs: list[str] = Field(default_factory=list)
    meta: dict[str, str] = Field(default_factory=dict)


class AppRoleLogin(_Strict):
    role_id: str = Field(min_length=1, max_length=128)
    secret_id: str = Field(min_length=1, max_length=256)


def _token_json(info: TokenInfo) -> dict[str, Any]:
    return info.to_json()


async def _token_admin(state: AppState, caller: Caller, action: str) -> None:
    await state.guard(caller, "admin", "sys/tokens", action)


# -- tokens -------------------------------------------------------------------


@router.post("/v1/auth/tokens", summary="Issue a token bound to policies (shown once)")
async def create_token(body: TokenCreate, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await _token_admin(state, caller, "token-create")
    for name in body.policies:
        validate_policy_name(name)
    if not caller.identity.is_admin:
        extra = sorted(set(body.policies) - set(caller.identity.policies))
        if extra:
            await state.audit(
                caller, "token-create", "sys/tokens", "denied", detail="policies beyond own"
            )
            raise Forbidden(
                f"you may only issue tokens with your own policies; not allowed: {', '.join(extra)}"
            )
    ttl = parse_duration(body.ttl, name="ttl")
    max_ttl = parse_duration(body.max_ttl, name="max_ttl")
    issued = await asyncio.to_thread(
        lambda: state.tokens.create(
            policies=body.policies,
            display_name=body.display_name,
            ttl_seconds=ttl,
            max_ttl_seconds=max_ttl,
            renewable=body.renewable,
            meta=body.meta,
        )
    )
    await state.audit(caller, "token-create", f"sys/tokens/{issued.info.accessor}", "allowed")
    unknown = sorted(n for n in body.policies if n not in state.policies)
    answer = issued.to_json()
    if unknown:
        answer["warnings"] = [
            f"policy {n!r} does not exist (yet); it grants nothing" for n in unknown
        ]
    return answer


@router.get("/v1/auth/tokens/self", summary="Look up the calling token")
async def token_self(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    info = await asyncio.to_thread(state.tokens.lookup_accessor, caller.identity.accessor)
    return _token_json(info)


@router.post("/v1/auth/tokens/renew-self", summary="Renew the calling token")
async def renew_self(body: Renew, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await _renew(state, caller, caller.identity.accessor, body)


@router.post("/v1/auth/tokens/revoke-self", status_code=204, summary="Revoke the calling token")
async def revoke_self(state: StateDep, caller: CallerDep) -> None:
    await _revoke(state, caller, caller.identity.accessor)


@router.get("/v1/auth/tokens", summary="List live tokens (accessors, never values)")
async def list_tokens(
    state: StateDep,
    caller: CallerDep,
    limit: Annotated[QueryInt, Query(ge=1, le=1000)] = 100,
    include_revoked: bool = False,
) -> dict[str, Any]:
    await _token_admin(state, caller, "token-list")
    infos = await asyncio.to_thread(
        lambda: state.tokens.list(limit=min(max(limit, 1), 1000), include_revoked=include_revoked)
    )
    await state.audit(caller, "token-list", "sys/tokens", "allowed")
    return {"tokens": [_token_json(info) for info in infos]}


@router.get("/v1/auth/tokens/accessors/{accessor}", summary="Look up a token by accessor")
async def lookup_accessor(accessor: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await _token_admin(state, caller, "token-lookup")
    info = await asyncio.to_thread(state.tokens.lookup_accessor, accessor)
    await state.audit(caller, "token-lookup", f"sys/tokens/{accessor}", "allowed")
    return _token_json(info)


@router.post("/v1/auth/tokens/accessors/{accessor}/renew", summary="Renew a token by accessor")
async def renew_accessor(
    accessor: str, body: Renew, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await _token_admin(state, caller, "token-renew")
    return await _renew(state, caller, accessor, body)


@router.post(
    "/v1/auth/tokens/accessors/{accessor}/revoke",
    status_code=204,
    summary="Revoke a token by accessor",
)
async def revoke_accessor(accessor: str, state: StateDep, caller: CallerDep) -> None:
    await _token_admin(state, caller, "token-revoke")
    await _revoke(state, caller, accessor)


@router.post("/v1/auth/tokens/revoke", status_code=204, summary="Revoke a token by its value")
async def revoke_token(body: RevokeByToken, state: StateDep, caller: CallerDep) -> None:
    await _token_admin(state, caller, "token-revoke")
    info = await asyncio.to_thread(state.tokens.lookup_token, body.token)
    await _revoke(state, caller, info.accessor)


async def _renew(state: AppState, caller: Caller, accessor: str, body: Renew) -> dict[str, Any]:
    increment = parse_duration(body.increment, name="increment") if body.increment else None
    try:
        info = await asyncio.to_thread(state.tokens.renew, accessor, increment)
    except SecretsdError as error:
        await state.audit_error(caller, "token-renew", f"sys/tokens/{accessor}", error, None)
        raise
    await state.publish("token", accessor)
    await state.audit(caller, "token-renew", f"sys/tokens/{accessor}", "allowed")
    return _token_json(info)


async def _revoke(state: AppState, caller: Caller, accessor: str) -> None:
    await asyncio.to_thread(state.tokens.revoke_accessor, accessor)
    await state.publish("token", accessor)
    await state.audit(caller, "token-revoke", f"sys/tokens/{accessor}", "allowed")


# -- AppRole ------------------------------------------------------------------


def _role_path(name: str) -> str:
    return f"sys/approle/{name}"


@router.put("/v1/auth/approle/roles/{name}", summary="Create or update an AppRole role")
async def put_role(
    name: NameParam, body: RoleWrite, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await state.guard(caller, "admin", _role_path(name), "approle-write")
    check_cidrs(body.bound_cidrs)
    role = await asyncio.to_thread(
        lambda: state.approles.put_role(
            name,
            policies=body.policies,
            token_ttl=parse_duration(body.token_ttl, name="token_ttl"),
            token_max_ttl=parse_duration(body.token_max_ttl, name="token_max_ttl"),
            bound_cidrs=body.bound_cidrs,
            secret_id_ttl=parse_duration(body.secret_id_ttl, name="secret_id_ttl") or None,
            secret_id_num_uses=body.secret_id_num_uses or None,
        )
    )
    await state.audit(caller, "approle-write", _role_path(name), "allowed")
    return role.to_json()


@router.get("/v1/auth/approle/roles", summary="List AppRole roles")
async def list_roles(state: StateDep, caller: CallerDep) -> dict[str, list[str]]:
    await state.guard(caller, "list", "sys/approle", "approle-list")
    names = await asyncio.to_thread(state.approles.list_roles)
    return {"roles": [n for n in names if state.allowed(caller, "read", _role_path(n))]}


@router.get("/v1/auth/approle/roles/{name}", summary="Read a role (includes its role_id)")
async def get_role(name: NameParam, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "read", _role_path(name), "approle-read")
    role = await asyncio.to_thread(state.approles.get_role, name)
    await state.audit(caller, "approle-read", _role_path(name), "allowed")
    return role.to_json()


@router.delete("/v1/auth/approle/roles/{name}", status_code=204, summary="Delete a role")
async def delete_role(name: NameParam, state: StateDep, caller: CallerDep) -> None:
    await state.guard(caller, "admin", _role_path(name), "approle-delete")
    await asyncio.to_thread(state.approles.delete_role, name)
    await state.audit(caller, "approle-delete", _role_path(name), "allowed")


@router.post("/v1/auth/approle/roles/{name}/secret-ids", summary="Issue a secret-id (shown once)")
async def create_secret_id(
    name: NameParam, body: SecretIdCreate, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await state.guard(caller, "admin", _role_path(name), "approle-secret-id")
    ttl = parse_duration(body.ttl, name="ttl") if body.ttl is not None else None
    value, info = await asyncio.to_thread(
        lambda: state.approles.issue_secret_id(
            name,
            num_uses=body.num_uses,
            ttl_seconds=ttl,
            bound_cidrs=body.bound_cidrs,
            meta=body.meta,
        )
    )
    await state.audit(caller, "approle-secret-id", f"{_role_path(name)}/{info.accessor}", "allowed")
    return {"secret_id": value, **info.to_json()}


@router.get("/v1/auth/approle/roles/{name}/secret-ids", summary="List a role's secret-ids")
async def list_secret_ids(name: NameParam, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "admin", _role_path(name), "approle-secret-id-list")
    infos = await asyncio.to_thread(state.approles.list_secret_ids, name)
    return {"secret_ids": [info.to_json() for info in infos]}


@router.delete(
    "/v1/auth/approle/roles/{name}/secret-ids/{accessor}",
    status_code=204,
    summary="Revoke a secret-id by its accessor",
)
async def revoke_secret_id(
    name: NameParam, accessor: str, state: StateDep, caller: CallerDep
) -> None:
    await state.guard(caller, "admin", _role_path(name), "approle-secret-id-revoke")
    await asyncio.to_thread(state.approles.revoke_secret_id, name, accessor)
    await state.audit(
        caller, "approle-secret-id-revoke", f"{_role_path(name)}/{accessor}", "allowed"
    )


@router.post("/v1/auth/approle/login", summary="Log in with role_id + secret_id (no token needed)")
async def approle_login(body: AppRoleLogin, request: Request, state: StateDep) -> dict[str, Any]:
    client = client_address(request)
    rid = request_id(request)

    def attempt() -> tuple[IssuedToken, str, str]:
        role, issued = state.approles.login(body.role_id, body.secret_id, client)
        return issued, _role_path(role.name), ""

    issued = await state.audited_login(
        method="approle",
        path="sys/approle",
        client=client,
        request_id=rid,
        refused_message=REFUSED_MESSAGE,
        attempt=attempt,
        role=body.role_id,
    )
    return issued.to_json()
