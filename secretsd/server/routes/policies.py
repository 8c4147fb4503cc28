"""``/v1/policies``: named deny-by-default rule sets, validated on write.

Authorised (and audited, allowed or denied) by :mod:`secretsd.server.authorize`
on ``sys/policies/<name>``: ``admin`` to write or delete, ``read`` to read,
``list`` on ``sys/policies`` to list. A writer must hold every rule it writes
(and every deny it lifts). A change is applied by every worker of the replica
before the call returns, and by other replicas within the change-poll interval.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from secretsd.policy import Policy
from secretsd.server.authorize import Admin, authorize
from secretsd.server.deps import StateDep

__all__ = ["router"]

router = APIRouter(tags=["policies"])
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class PolicyWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[dict[str, Any]] = Field(
        description='[{"path": "apps/web/*", "capabilities": ["read", "list"]}, ...]'
    )


def _path(name: str) -> str:
    return f"sys/policies/{name}"


@router.put("/v1/policies/{name}", summary="Create or replace a policy")
async def write_policy(
    name: NameParam,
    body: PolicyWrite,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/policies/{name}", "policy-write", mutates=True)
    ],
) -> dict[str, Any]:
    # Everyone holding the policy gets its rules: the writer must hold them itself.
    policy = Policy.from_document(name, body.rules)
    admin.check_rules(policy, state.policies.get(name), f"writing policy {name!r}")
    policy, created = await asyncio.to_thread(state.policy_store.put, name, body.rules)
    await state.publish("policy", name)
    await state.reload_policies()
    admin.done(detail="created" if created else "replaced")
    return {"name": name, "rules": policy.to_document(), "created": created}


@router.get("/v1/policies", summary="List policies")
async def list_policies(
    state: StateDep, admin: Annotated[Admin, authorize("list", "sys/policies", "policy-list")]
) -> dict[str, list[str]]:
    names = await asyncio.to_thread(state.policy_store.names)
    return {"policies": [n for n in names if state.allowed(admin.caller, "read", _path(n))]}


@router.get("/v1/policies/{name}", summary="Read a policy")
async def read_policy(
    name: NameParam,
    state: StateDep,
    admin: Annotated[Admin, authorize("read", "sys/policies/{name}", "policy-read")],
) -> dict[str, Any]:
    policy = await asyncio.to_thread(state.policy_store.get, name)
    return {"name": name, "rules": policy.to_document()}


@router.delete("/v1/policies/{name}", status_code=204, summary="Delete a policy")
async def delete_policy(
    name: NameParam,
    state: StateDep,
    admin: Annotated[
        Admin, authorize("admin", "sys/policies/{name}", "policy-delete", mutates=True)
    ],
) -> None:
    current = state.policies.get(name)
    if current is not None:  # deleting lifts its denies from everyone who holds it
        admin.check_rules(Policy(name, ()), current, f"deleting policy {name!r}")
    await asyncio.to_thread(state.policy_store.delete, name)
    await state.publish("policy", name)
    await state.reload_policies()
