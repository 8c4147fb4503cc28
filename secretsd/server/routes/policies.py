"""``/v1/policies``: named deny-by-default rule sets, validated on write.

Authorised on ``sys/policies/<name>``: ``admin`` to write or delete, ``read``
to read, ``list`` on ``sys/policies`` to list. A change reaches every worker
and replica through the change feed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from secretsd.server.deps import CallerDep, StateDep

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
    name: NameParam, body: PolicyWrite, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await state.guard(caller, "admin", _path(name), "policy-write")
    policy, created = await asyncio.to_thread(state.policy_store.put, name, body.rules)
    await state.publish("policy", name)
    await state.reload_policies()
    await state.audit(caller, "policy-write", _path(name), "allowed")
    return {"name": name, "rules": policy.to_document(), "created": created}


@router.get("/v1/policies", summary="List policies")
async def list_policies(state: StateDep, caller: CallerDep) -> dict[str, list[str]]:
    await state.guard(caller, "list", "sys/policies", "policy-list")
    names = await asyncio.to_thread(state.policy_store.names)
    return {"policies": [n for n in names if state.allowed(caller, "read", _path(n))]}


@router.get("/v1/policies/{name}", summary="Read a policy")
async def read_policy(name: NameParam, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "read", _path(name), "policy-read")
    policy = await asyncio.to_thread(state.policy_store.get, name)
    return {"name": name, "rules": policy.to_document()}


@router.delete("/v1/policies/{name}", status_code=204, summary="Delete a policy")
async def delete_policy(name: NameParam, state: StateDep, caller: CallerDep) -> None:
    await state.guard(caller, "admin", _path(name), "policy-delete")
    await asyncio.to_thread(state.policy_store.delete, name)
    await state.publish("policy", name)
    await state.reload_policies()
    await state.audit(caller, "policy-delete", _path(name), "allowed")
