"""``/v1/auth/kubernetes``: service-account JWT logins for pods (see secretsd.auth.kubernetes).

Configuration and roles are authorised on ``sys/kubernetes`` and
``sys/kubernetes/<role>``; login needs no token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from secretsd.auth.kubernetes import TokenReviewConfig
from secretsd.auth.tokens import IssuedToken
from secretsd.durations import parse_duration
from secretsd.server.deps import CallerDep, StateDep, client_address, request_id

__all__ = ["router"]

router = APIRouter(tags=["auth"])
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
REFUSED = (
    "Kubernetes login refused: the service-account token is invalid or expired, or the role "
    "does not bind its namespace and service account"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenReviewWrite(_Strict):
    host: str = Field(min_length=1, max_length=2000)
    ca_cert: str | None = Field(default=None, max_length=65536)
    token_file: str | None = Field(default=None, max_length=4096)


class ConfigWrite(_Strict):
    issuer: str = Field(min_length=1, max_length=500)
    public_keys: list[str] = Field(default_factory=list, max_length=20)
    audiences: list[str] = Field(default_factory=list, max_length=20)
    jwks_url: str | None = Field(default=None, max_length=2000)
    oidc_discovery_url: str | None = Field(default=None, max_length=2000)
    jwks_ca_cert: str | None = Field(default=None, max_length=65536)
    token_review: TokenReviewWrite | None = None
    allow_any_audience: bool = False
    leeway: int = Field(default=0, ge=0, le=300)


class RoleWrite(_Strict):
    bound_service_account_names: list[str] = Field(min_length=1)
    bound_service_account_namespaces: list[str] = Field(min_length=1)
    policies: list[str] = Field(default_factory=list)
    token_ttl: str | int = Field(default="1h")
    token_max_ttl: str | int = Field(default="24h")


class Login(_Strict):
    role: str = Field(min_length=1, max_length=64)
    jwt: str = Field(min_length=1, max_length=16384)


@router.put("/v1/auth/kubernetes/config", summary="Set the cluster's issuer and signing keys")
async def put_config(body: ConfigWrite, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "admin", "sys/kubernetes", "kubernetes-config")
    review = body.token_review
    config = await asyncio.to_thread(
        lambda: state.kubernetes.configure(
            body.issuer,
            body.public_keys,
            body.audiences,
            jwks_url=body.jwks_url,
            oidc_discovery_url=body.oidc_discovery_url,
            jwks_ca_cert=body.jwks_ca_cert,
            token_review=TokenReviewConfig(**review.model_dump()) if review else None,
            allow_any_audience=body.allow_any_audience,
            leeway=body.leeway,
        )
    )
    await state.audit(caller, "kubernetes-config", "sys/kubernetes", "allowed")
    return config.to_json()


@router.get("/v1/auth/kubernetes/config", summary="Read the Kubernetes login configuration")
async def get_config(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "read", "sys/kubernetes", "kubernetes-config-read")
    return (await asyncio.to_thread(state.kubernetes.config)).to_json()


@router.put("/v1/auth/kubernetes/roles/{name}", summary="Create or update a Kubernetes role")
async def put_role(
    name: NameParam, body: RoleWrite, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await state.guard(caller, "admin", f"sys/kubernetes/{name}", "kubernetes-role-write")
    role = await asyncio.to_thread(
        lambda: state.kubernetes.put_role(
            name,
            service_accounts=body.bound_service_account_names,
            namespaces=body.bound_service_account_namespaces,
            policies=body.policies,
            token_ttl=parse_duration(body.token_ttl, name="token_ttl"),
            token_max_ttl=parse_duration(body.token_max_ttl, name="token_max_ttl"),
        )
    )
    await state.audit(caller, "kubernetes-role-write", f"sys/kubernetes/{name}", "allowed")
    return role.to_json()


@router.get("/v1/auth/kubernetes/roles", summary="List Kubernetes roles")
async def list_roles(state: StateDep, caller: CallerDep) -> dict[str, list[str]]:
    await state.guard(caller, "list", "sys/kubernetes", "kubernetes-role-list")
    return {"roles": await asyncio.to_thread(state.kubernetes.list_roles)}


@router.get("/v1/auth/kubernetes/roles/{name}", summary="Read a Kubernetes role")
async def get_role(name: NameParam, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "read", f"sys/kubernetes/{name}", "kubernetes-role-read")
    return (await asyncio.to_thread(state.kubernetes.get_role, name)).to_json()


@router.delete("/v1/auth/kubernetes/roles/{name}", status_code=204, summary="Delete a role")
async def delete_role(name: NameParam, state: StateDep, caller: CallerDep) -> None:
    await state.guard(caller, "admin", f"sys/kubernetes/{name}", "kubernetes-role-delete")
    await asyncio.to_thread(state.kubernetes.delete_role, name)
    await state.audit(caller, "kubernetes-role-delete", f"sys/kubernetes/{name}", "allowed")


@router.post("/v1/auth/kubernetes/login", summary="Log in with a service-account JWT")
async def login(body: Login, request: Request, state: StateDep) -> dict[str, Any]:
    client, rid = client_address(request), request_id(request)

    def attempt() -> tuple[IssuedToken, str, str]:
        account, issued = state.kubernetes.login(body.role, body.jwt)
        return issued, f"sys/kubernetes/{body.role}", f"{account.namespace}/{account.name}"

    issued = await state.audited_login(
        method="kubernetes",
        path=f"sys/kubernetes/{body.role}",
        client=client,
        request_id=rid,
        refused_message=REFUSED,
        attempt=attempt,
    )
    return issued.to_json()
