"""``/v1/auth/kubernetes``: service-account JWT logins for pods (see secretsd.auth.kubernetes).

Configuration and roles are authorised (and audited) on ``sys/kubernetes``
(the ``default`` cluster), ``sys/kubernetes/clusters/<name>`` (another
cluster) and ``sys/kubernetes/<role>`` by :mod:`secretsd.server.authorize`; a
role's writer must hold the policies it grants, and whoever changes (or
removes) a cluster's signing keys must hold what every role bound to that
cluster grants. ``/v1/auth/kubernetes/config`` is the ``default`` cluster's
configuration, as it was before clusters had names. Login needs no token: the
role names its cluster.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from secretsd.auth.kubernetes import DEFAULT_CLUSTER, TokenReviewConfig, validate_cluster_name
from secretsd.auth.tokens import IssuedToken
from secretsd.durations import Duration, parse_duration
from secretsd.errors import NotFound
from secretsd.policy import validate_policy_name
from secretsd.server.authorize import Admin, audited_by, authorize
from secretsd.server.deps import StateDep, client_address, request_id
from secretsd.server.state import AppState, Caller

__all__ = ["router"]

router = APIRouter(tags=["auth"])
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
ClusterParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
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
    token_ttl: Duration = Field(default="1h")
    token_max_ttl: Duration = Field(default="24h")
    cluster: str = Field(default=DEFAULT_CLUSTER, pattern=r"^[A-Za-z0-9._-]{1,64}$")


class Login(_Strict):
    role: str = Field(min_length=1, max_length=64)
    jwt: str = Field(min_length=1, max_length=16384)


def _role_path(name: str) -> str:
    return f"sys/kubernetes/{name}"


def cluster_resource(cluster: str) -> str:
    """What a cluster's configuration is authorised on (``default``: as before clusters)."""
    return "sys/kubernetes" if cluster == DEFAULT_CLUSTER else f"sys/kubernetes/clusters/{cluster}"


def _cluster_of(request: Request, _caller: Caller) -> str:
    return cluster_resource(str(request.path_params.get("cluster", "")))


async def _granted_by_roles(state: AppState, cluster: str) -> list[str]:
    """Every policy a role of ``cluster`` grants (whoever sets its keys can log in to them)."""
    roles = await asyncio.to_thread(state.kubernetes.roles_of_cluster, cluster)
    return [policy for role in roles for policy in role.policies]


async def _configure(
    state: AppState, admin: Admin, cluster: str, body: ConfigWrite
) -> dict[str, Any]:
    # The signing keys decide who can log in to the cluster's roles: hold what they grant.
    admin.check_outranks(
        await _granted_by_roles(state, cluster),
        f"changing the Kubernetes login keys of cluster {cluster!r}",
    )
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
            cluster=cluster,
        )
    )
    await state.publish("role", cluster_resource(cluster))
    return {"cluster": cluster, **config.to_json()}


async def _outrank_role(state: AppState, admin: Admin, name: str, what: str) -> None:
    try:
        role = await asyncio.to_thread(state.kubernetes.get_role, name)
    except NotFound:
        return
    admin.check_outranks(role.policies, what)


@router.put("/v1/auth/kubernetes/config", summary="Set the default cluster's issuer and keys")
async def put_config(
    body: ConfigWrite,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/kubernetes", "kubernetes-config", mutates=True)
    ],
) -> dict[str, Any]:
    return await _configure(state, admin, DEFAULT_CLUSTER, body)


@router.get("/v1/auth/kubernetes/config", summary="Read the default cluster's login configuration")
async def get_config(
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", "sys/kubernetes", "kubernetes-config-read")],
) -> dict[str, Any]:
    config = await asyncio.to_thread(state.kubernetes.config)
    return {"cluster": DEFAULT_CLUSTER, **config.to_json()}


@router.get("/v1/auth/kubernetes/clusters", summary="List the clusters that can log in")
async def list_clusters(
    state: StateDep,
    _admin: Annotated[Admin, authorize("list", "sys/kubernetes", "kubernetes-cluster-list")],
) -> dict[str, list[str]]:
    return {"clusters": await asyncio.to_thread(state.kubernetes.list_clusters)}


@router.put(
    "/v1/auth/kubernetes/clusters/{cluster}/config",
    summary="Set one cluster's issuer and signing keys",
)
async def put_cluster_config(
    cluster: ClusterParam,
    body: ConfigWrite,
    state: StateDep,
    admin: Annotated[Admin, authorize("admin", _cluster_of, "kubernetes-config", mutates=True)],
) -> dict[str, Any]:
    return await _configure(state, admin, validate_cluster_name(cluster), body)


@router.get(
    "/v1/auth/kubernetes/clusters/{cluster}/config",
    summary="Read one cluster's login configuration",
)
async def get_cluster_config(
    cluster: ClusterParam,
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", _cluster_of, "kubernetes-config-read")],
) -> dict[str, Any]:
    config = await asyncio.to_thread(state.kubernetes.config, cluster)
    return {"cluster": cluster, **config.to_json()}


@router.delete(
    "/v1/auth/kubernetes/clusters/{cluster}/config",
    status_code=204,
    summary="Remove a cluster's login configuration (its roles can no longer be logged in to)",
)
async def delete_cluster_config(
    cluster: ClusterParam,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", _cluster_of, "kubernetes-config-delete", mutates=True)
    ],
) -> None:
    admin.check_outranks(
        await _granted_by_roles(state, cluster),
        f"removing the Kubernetes login of cluster {cluster!r}",
    )
    await asyncio.to_thread(state.kubernetes.delete_config, cluster)
    await state.publish("role", cluster_resource(cluster))


@router.put("/v1/auth/kubernetes/roles/{name}", summary="Create or update a Kubernetes role")
async def put_role(
    name: NameParam,
    body: RoleWrite,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/kubernetes/{name}", "kubernetes-role-write", mutates=True)
    ],
) -> dict[str, Any]:
    for policy in body.policies:
        validate_policy_name(policy)
    admin.check_grant(body.policies, f"Kubernetes role {name!r}")
    await _outrank_role(state, admin, name, f"changing Kubernetes role {name!r}")
    role = await asyncio.to_thread(
        lambda: state.kubernetes.put_role(
            name,
            service_accounts=body.bound_service_account_names,
            namespaces=body.bound_service_account_namespaces,
            policies=body.policies,
            token_ttl=parse_duration(body.token_ttl, name="token_ttl"),
            token_max_ttl=parse_duration(body.token_max_ttl, name="token_max_ttl"),
            cluster=body.cluster,
        )
    )
    await state.publish("role", _role_path(name))
    return role.to_json()


@router.get("/v1/auth/kubernetes/roles", summary="List Kubernetes roles")
async def list_roles(
    state: StateDep,
    _admin: Annotated[Admin, authorize("list", "sys/kubernetes", "kubernetes-role-list")],
) -> dict[str, list[str]]:
    return {"roles": await asyncio.to_thread(state.kubernetes.list_roles)}


@router.get("/v1/auth/kubernetes/roles/{name}", summary="Read a Kubernetes role")
async def get_role(
    name: NameParam,
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", "sys/kubernetes/{name}", "kubernetes-role-read")],
) -> dict[str, Any]:
    return (await asyncio.to_thread(state.kubernetes.get_role, name)).to_json()


@router.delete("/v1/auth/kubernetes/roles/{name}", status_code=204, summary="Delete a role")
async def delete_role(
    name: NameParam,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/kubernetes/{name}", "kubernetes-role-delete", mutates=True)
    ],
) -> None:
    await _outrank_role(state, admin, name, f"deleting Kubernetes role {name!r}")
    await asyncio.to_thread(state.kubernetes.delete_role, name)
    await state.publish("role", _role_path(name))


@audited_by("login")
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
        role=body.role,
    )
    return issued.to_json()
