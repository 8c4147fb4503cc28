"""``/v1/auth``: tokens (issue, look up, renew, revoke) and AppRole host logins.

Administration is authorised by the same policies as secrets, on paths under
the reserved ``sys`` folder: ``sys/tokens`` for other people's tokens and
``sys/approle/<role>`` for roles, through the one authorising and auditing
dependency (:mod:`secretsd.server.authorize`). Whatever grants (a token, a
role, a secret-id) needs the caller to hold what it grants; a token never
outlives its creator, and only a token that holds everything another holds
may renew or revoke it. Token values and secret-ids appear only in
the response that creates them; audit records name tokens by accessor.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from secretsd.auth.approle import REFUSED_MESSAGE, RoleInfo, check_cidrs
from secretsd.auth.tokens import IssuedToken, TokenInfo, iso_time
from secretsd.durations import parse_duration
from secretsd.errors import NotFound
from secretsd.policy import ADMIN_POLICY, validate_policy_name
from secretsd.server.authorize import Admin, audited_by, authorize
from secretsd.server.deps import StateDep, client_address, request_id
from secretsd.server.state import AppState, Caller

__all__ = ["router"]

router = APIRouter(tags=["auth"])
Duration = str | int
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
    orphan: bool = Field(
        default=False,
        description="Outlive the creating token and survive its revocation (admins only)",
    )


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
    secret_id_num_uses: int = Field(default=0, ge=0)


class SecretIdCreate(_Strict):
    num_uses: int | None = Field(default=None, ge=0, description="0 = unlimited")
    ttl: Duration | None = None
    bound_cidrs: list[str] = Field(default_factory=list)
    meta: dict[str, str] = Field(default_factory=dict)


class AppRoleLogin(_Strict):
    role_id: str = Field(min_length=1, max_length=128)
    secret_id: str = Field(min_length=1, max_length=256)


def _token_json(info: TokenInfo) -> dict[str, Any]:
    return info.to_json()


def _self_path(_request: Request, caller: Caller) -> str:
    return f"sys/tokens/{caller.identity.accessor}"


# -- tokens -------------------------------------------------------------------


@router.post("/v1/auth/tokens", summary="Issue a token bound to policies (shown once)")
async def create_token(
    body: TokenCreate,
    state: StateDep,
    admin: Annotated[Admin, authorize("admin", "sys/tokens", "token-create", mutates=True)],
) -> dict[str, Any]:
    for name in body.policies:
        validate_policy_name(name)
    admin.check_grant(body.policies, "this token")
    ttl = parse_duration(body.ttl, name="ttl")
    max_ttl = parse_duration(body.max_ttl, name="max_ttl")
    creator = admin.caller.identity
    if body.orphan:  # e.g. a lasting admin made with a break-glass token
        admin.check_outranks([ADMIN_POLICY], "an orphan token (one that outlives its creator)")
    issued = await asyncio.to_thread(
        lambda: state.tokens.create(
            policies=body.policies,
            display_name=body.display_name,
            ttl_seconds=ttl,
            max_ttl_seconds=max_ttl,
            renewable=body.renewable,
            meta=body.meta,
            # A child never outlives its creator, and dies with it.
            not_after=None if body.orphan else creator.expires_at,
            parent=None if body.orphan else creator.accessor,
        )
    )
    admin.done(f"sys/tokens/{issued.info.accessor}")
    answer = issued.to_json()
    if (
        not body.orphan
        and creator.expires_at is not None
        and (not ttl or issued.info.ttl_seconds != ttl)
    ):
        answer["warnings"] = [
            f"the lifetime was cut to your own token's expiry ({iso_time(creator.expires_at)}): "
            "a token never outlives the token that created it"
        ]
    return answer


@router.get("/v1/auth/tokens/self", summary="Look up the calling token")
async def token_self(
    state: StateDep, admin: Annotated[Admin, authorize(None, _self_path, "token-lookup-self")]
) -> dict[str, Any]:
    info = await asyncio.to_thread(state.tokens.lookup_accessor, admin.caller.identity.accessor)
    return _token_json(info)


@router.post("/v1/auth/tokens/renew-self", summary="Renew the calling token")
async def renew_self(
    body: Renew,
    state: StateDep,
    admin: Annotated[Admin, authorize(None, _self_path, "token-renew", mutates=True)],
) -> dict[str, Any]:
    return await _renew(state, admin, admin.caller.identity.accessor, body)


@router.post("/v1/auth/tokens/revoke-self", status_code=204, summary="Revoke the calling token")
async def revoke_self(
    state: StateDep,
    admin: Annotated[Admin, authorize(None, _self_path, "token-revoke", mutates=True)],
) -> None:
    await _revoke(state, admin.caller.identity.accessor)


@router.get("/v1/auth/tokens", summary="List live tokens (accessors, never values)")
async def list_tokens(
    state: StateDep,
    _admin: Annotated[Admin, authorize("admin", "sys/tokens", "token-list")],
    limit: int = 100,
    include_revoked: bool = False,
) -> dict[str, Any]:
    infos = await asyncio.to_thread(
        lambda: state.tokens.list(limit=min(max(limit, 1), 1000), include_revoked=include_revoked)
    )
    return {"tokens": [_token_json(info) for info in infos]}


@router.get("/v1/auth/tokens/accessors/{accessor}", summary="Look up a token by accessor")
async def lookup_accessor(
    accessor: str,
    state: StateDep,
    _admin: Annotated[Admin, authorize("admin", "sys/tokens/{accessor}", "token-lookup")],
) -> dict[str, Any]:
    info = await asyncio.to_thread(state.tokens.lookup_accessor, accessor)
    return _token_json(info)


@router.post("/v1/auth/tokens/accessors/{accessor}/renew", summary="Renew a token by accessor")
async def renew_accessor(
    accessor: str,
    body: Renew,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/tokens/{accessor}", "token-renew", mutates=True)
    ],
) -> dict[str, Any]:
    return await _renew(state, admin, accessor, body)


@router.post(
    "/v1/auth/tokens/accessors/{accessor}/revoke",
    status_code=204,
    summary="Revoke a token by accessor",
)
async def revoke_accessor(
    accessor: str,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/tokens/{accessor}", "token-revoke", mutates=True)
    ],
) -> None:
    await _revoke_other(state, admin, accessor)


@router.post("/v1/auth/tokens/revoke", status_code=204, summary="Revoke a token by its value")
async def revoke_token(
    body: RevokeByToken,
    state: StateDep,
    admin: Annotated[Admin, authorize("admin", "sys/tokens", "token-revoke", mutates=True)],
) -> None:
    info = await asyncio.to_thread(state.tokens.lookup_token, body.token)
    admin.done(f"sys/tokens/{info.accessor}")
    await _revoke_other(state, admin, info.accessor)


async def _renew(state: AppState, admin: Admin, accessor: str, body: Renew) -> dict[str, Any]:
    increment = parse_duration(body.increment, name="increment") if body.increment else None
    creator = admin.caller.identity
    not_after = None
    if accessor != creator.accessor:
        target = await asyncio.to_thread(state.tokens.lookup_accessor, accessor)
        admin.check_outranks(target.policies, f"renewing token {accessor}")
        not_after = creator.expires_at  # nor may a renewal make it outlive the renewer
    info = await asyncio.to_thread(state.tokens.renew, accessor, increment, not_after)
    await state.publish("token", accessor)
    return _token_json(info)


async def _revoke_other(state: AppState, admin: Admin, accessor: str) -> None:
    """Only a token holding everything the target holds may revoke it (no lockout)."""
    if accessor != admin.caller.identity.accessor:
        target = await asyncio.to_thread(state.tokens.lookup_accessor, accessor)
        admin.check_outranks(target.policies, f"revoking token {accessor}")
    await _revoke(state, accessor)


async def _revoke(state: AppState, accessor: str) -> None:
    revoked = await asyncio.to_thread(state.tokens.revoke_accessor, accessor)
    for gone in revoked:
        await state.publish("token", gone)


# -- AppRole ------------------------------------------------------------------


def _role_path(name: str) -> str:
    return f"sys/approle/{name}"


async def _existing_role(state: AppState, name: str) -> RoleInfo | None:
    try:
        return await asyncio.to_thread(state.approles.get_role, name)
    except NotFound:
        return None


async def _outrank_role(state: AppState, admin: Admin, name: str, what: str) -> None:
    """Changing, ending or issuing for a role needs everything the role grants."""
    role = await _existing_role(state, name)
    if role is not None:
        admin.check_outranks(role.policies, what)


@router.put("/v1/auth/approle/roles/{name}", summary="Create or update an AppRole role")
async def put_role(
    name: NameParam,
    body: RoleWrite,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/approle/{name}", "approle-write", mutates=True)
    ],
) -> dict[str, Any]:
    for policy in body.policies:
        validate_policy_name(policy)
    admin.check_grant(body.policies, f"role {name!r}")
    await _outrank_role(state, admin, name, f"changing role {name!r}")
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
    await state.publish("role", _role_path(name))
    return role.to_json()


@router.get("/v1/auth/approle/roles", summary="List AppRole roles")
async def list_roles(
    state: StateDep, admin: Annotated[Admin, authorize("list", "sys/approle", "approle-list")]
) -> dict[str, list[str]]:
    names = await asyncio.to_thread(state.approles.list_roles)
    return {"roles": [n for n in names if state.allowed(admin.caller, "read", _role_path(n))]}


@router.get("/v1/auth/approle/roles/{name}", summary="Read a role (includes its role_id)")
async def get_role(
    name: NameParam,
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", "sys/approle/{name}", "approle-read")],
) -> dict[str, Any]:
    role = await asyncio.to_thread(state.approles.get_role, name)
    return role.to_json()


@router.delete("/v1/auth/approle/roles/{name}", status_code=204, summary="Delete a role")
async def delete_role(
    name: NameParam,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/approle/{name}", "approle-delete", mutates=True)
    ],
) -> None:
    await _outrank_role(state, admin, name, f"deleting role {name!r}")
    await asyncio.to_thread(state.approles.delete_role, name)
    await state.publish("role", _role_path(name))


@router.post("/v1/auth/approle/roles/{name}/secret-ids", summary="Issue a secret-id (shown once)")
async def create_secret_id(
    name: NameParam,
    body: SecretIdCreate,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/approle/{name}", "approle-secret-id", mutates=True)
    ],
) -> dict[str, Any]:
    # A secret-id is a login with the role's policies: the issuer must hold them.
    await _outrank_role(state, admin, name, f"a secret-id for role {name!r}")
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
    admin.done(f"{_role_path(name)}/{info.accessor}")
    return {"secret_id": value, **info.to_json()}


@router.get("/v1/auth/approle/roles/{name}/secret-ids", summary="List a role's secret-ids")
async def list_secret_ids(
    name: NameParam,
    state: StateDep,
    _admin: Annotated[Admin, authorize("admin", "sys/approle/{name}", "approle-secret-id-list")],
) -> dict[str, Any]:
    infos = await asyncio.to_thread(state.approles.list_secret_ids, name)
    return {"secret_ids": [info.to_json() for info in infos]}


@router.delete(
    "/v1/auth/approle/roles/{name}/secret-ids/{accessor}",
    status_code=204,
    summary="Revoke a secret-id by its accessor",
)
async def revoke_secret_id(
    name: NameParam,
    accessor: str,
    state: StateDep,
    admin: Annotated[
        Admin,
        authorize(
            "admin", "sys/approle/{name}/{accessor}", "approle-secret-id-revoke", mutates=True
        ),
    ],
) -> None:
    await _outrank_role(state, admin, name, f"revoking a secret-id of role {name!r}")
    await asyncio.to_thread(state.approles.revoke_secret_id, name, accessor)


@audited_by("login")
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
    )
    return issued.to_json()
