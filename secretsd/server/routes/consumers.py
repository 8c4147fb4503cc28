"""``/v1/consumers``: which version of each secret the agents and SDK processes hold.

A report may only name paths the caller can read (so nobody can claim to
hold secrets they may not see); listing a path's holders needs ``read`` on
it. Both are audited like every other route.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from secretsd.consumers import ConsumerStore
from secretsd.server.deps import CallerDep, StateDep
from secretsd.server.schemas import secret_path

__all__ = ["router"]

router = APIRouter(tags=["consumers"])

Version = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consumer: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")
    kind: str = Field(default="sdk", pattern=r"^(agent|sdk|other)$")
    versions: dict[str, Version] = Field(max_length=500)


@router.put("/v1/consumers", status_code=204, summary="Report the versions this consumer holds")
async def report(body: Report, state: StateDep, caller: CallerDep) -> None:
    for path in sorted(body.versions):
        secret_path(path)
        await state.guard(caller, "read", path, "consumer-report")
    identity = caller.identity
    await asyncio.to_thread(
        lambda: ConsumerStore(state.engine).report(
            consumer=body.consumer,
            kind=body.kind,
            identity=identity.accessor,
            display_name=identity.display_name,
            versions=body.versions,
        )
    )
    await state.audit(
        caller,
        "consumer-report",
        "sys/consumers",
        "allowed",
        detail=f"{body.consumer}: {len(body.versions)} path(s)",
    )


@router.get("/v1/consumers/{path:path}", summary="Who holds which version of a secret")
async def holders(path: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    secret_path(path)
    await state.guard(caller, "read", path, "consumers-read")
    found = await asyncio.to_thread(ConsumerStore(state.engine).holders, path)
    await state.audit(caller, "consumers-read", path, "allowed")
    now = time.time()
    return {"path": path, "consumers": [held.to_json(now) for held in found]}
