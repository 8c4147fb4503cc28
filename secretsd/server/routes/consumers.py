"""``/v1/consumers``: which version of each secret the agents and SDK processes hold.

A report may only name paths the caller can read (held or ``released``: an
SDK client closing withdraws its rows, so a process that exited is not
waited for) (so nobody can claim to
hold secrets they may not see); listing a path's holders needs ``read`` on
it. Both are authorised and audited by ``secretsd.server.authorize`` (the
report before it is stored), the report's paths each by ``read`` on them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from secretsd.consumers import ConsumerStore
from secretsd.server.authorize import Admin, authorize
from secretsd.server.deps import StateDep
from secretsd.server.schemas import secret_path
from secretsd.server.state import Caller

__all__ = ["router"]

router = APIRouter(tags=["consumers"])

Version = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consumer: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")
    kind: str = Field(default="sdk", pattern=r"^(agent|sdk|other)$")
    versions: dict[str, Version] = Field(max_length=500)
    #: Paths this consumer no longer holds (an SDK client closing): dropped from the list.
    released: list[str] = Field(default_factory=list, max_length=500)


@router.put("/v1/consumers", status_code=204, summary="Report the versions this consumer holds")
async def report(
    body: Report,
    state: StateDep,
    admin: Annotated[Admin, authorize(None, "sys/consumers", "consumer-report", mutates=True)],
) -> None:
    caller = admin.caller
    for path in sorted({*body.versions, *body.released}):
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
            released=body.released,
        )
    )
    detail = f"{body.consumer}: {len(body.versions)} path(s)"
    if body.released:
        detail += f", {len(body.released)} released"
    admin.done(detail=detail)


def _secret(request: Request, _caller: Caller) -> str:
    return str(request.path_params.get("path", ""))


@router.get("/v1/consumers/{path:path}", summary="Who holds which version of a secret")
async def holders(
    path: str,
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", _secret, "consumers-read")],
) -> dict[str, Any]:
    secret_path(path)
    found = await asyncio.to_thread(ConsumerStore(state.engine).holders, path)
    now = time.time()
    return {"path": path, "consumers": [held.to_json(now) for held in found]}
