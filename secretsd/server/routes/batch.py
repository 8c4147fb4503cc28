"""``POST /v1/secrets:batch``: many writes in one request, each decided on its own.

An importer writing thousands of secrets paid one HTTP round trip (and the
service's per-request overhead) per secret, twice with its provenance. A
batch carries up to ``MAX_BATCH_WRITES`` writes; each goes through exactly
the path ``PUT /v1/secrets/{path}`` takes (:func:`audited_mutation`: the one
authorisation decision, audited before and after, fail closed), so a batch
grants nothing a single write would not. Each write has its own check-and-set
and its own result: one denied or conflicting write does not stop the others.
A malformed batch (a bad path, a path twice, too many writes) is refused
whole, before anything is decided or written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from secretsd.errors import InvalidPath, SecretsdError
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.routes.secrets import audited_mutation
from secretsd.server.schemas import BatchWrite, BatchWriteRequest, secret_path
from secretsd.server.state import AppState, Caller

__all__ = ["BATCH_PARALLEL", "router"]

router = APIRouter(tags=["secrets"])

#: Writes of one batch in flight at once (Vault calls run in the worker's thread pool).
BATCH_PARALLEL = 8


async def _write_one(
    state: AppState, caller: Caller, item: BatchWrite, slots: asyncio.Semaphore
) -> dict[str, Any]:
    async with slots:
        try:
            version = await audited_mutation(
                state,
                caller,
                "write",
                "write",
                item.path,
                lambda: state.secrets.write(
                    item.path,
                    item.data,
                    cas=item.cas,
                    binary_keys=frozenset(item.binary_keys),
                    custom_metadata=item.custom_metadata,
                ),
                version_of=lambda v: v,
            )
        except SecretsdError as error:
            return {"path": item.path, "error": {"code": error.code, "message": error.message}}
    return {"path": item.path, "version": version}


@audited_by("secret-decision")
@router.post(
    "/v1/secrets:batch",
    summary="Write many secrets in one call (each authorised, audited and check-and-set alone)",
)
async def write_batch(
    body: BatchWriteRequest, state: StateDep, caller: CallerDep
) -> dict[str, list[dict[str, Any]]]:
    for index, item in enumerate(body.writes):
        try:
            secret_path(item.path)
        except InvalidPath as error:
            raise InvalidPath(
                f"writes[{index}]: {error.message}; nothing in this batch was written"
            ) from None
    slots = asyncio.Semaphore(BATCH_PARALLEL)
    results = await asyncio.gather(*(_write_one(state, caller, w, slots) for w in body.writes))
    return {"results": list(results)}
