"""``/v1/secrets/{path}``: read (with ETag and long-poll), write, patch, delete.

Every route authorises first, audits the outcome (denials included) and only
then answers, so no value leaves without a durable audit record. Mutations
are audited before they happen too, so a write that cannot be audited does
not happen (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from secretsd.bounds import MAX_VERSION, MAX_WAIT_SECONDS, QueryInt
from secretsd.errors import SecretsdError, ValidationFailed
from secretsd.server import reads
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.schemas import (
    PatchRequest,
    VersionsRequest,
    WriteRequest,
    WriteResponse,
    parse_versions,
    secret_path,
)
from secretsd.server.state import AppState, Caller

__all__ = ["audited_mutation", "router"]

router = APIRouter(tags=["secrets"])
T = TypeVar("T")


async def _wait_unless_gone(request: Request, waiting: Awaitable[int | None]) -> int | None:
    """Await a long-poll, but give up as soon as the client disconnects.

    Otherwise an abandoned wait would hold its watcher (and delay a graceful
    shutdown) until the timeout.
    """

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    wait_task = asyncio.ensure_future(waiting)
    gone_task = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({wait_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wait_task, gone_task):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return wait_task.result() if wait_task.done() and not wait_task.cancelled() else None


async def audited_mutation(
    state: AppState,
    caller: Caller,
    capability: str,
    action: str,
    path: str,
    operation: Callable[[], Awaitable[T]],
    *,
    version_of: Callable[[T], int | None] = lambda _: None,
) -> T:
    """Authorise, audit the attempt (fail closed), run, audit the outcome."""
    await state.guard(caller, capability, path, action)
    await state.audit(caller, action, path, "allowed", detail="requested")
    try:
        result = await operation()
    except SecretsdError as error:
        await state.audit_error(caller, action, path, error, None)
        raise
    await state.audit(caller, action, path, "allowed", version=version_of(result))
    return result


@audited_by("secret-decision")
@router.get(
    "/v1/secrets/{path:path}",
    summary="Read a secret (latest or ?version=), with ETag and long-poll",
    responses={304: {"description": "Not modified / no newer version before the timeout"}},
)
async def read_secret(
    path: str,
    request: Request,
    state: StateDep,
    caller: CallerDep,
    version: Annotated[
        QueryInt | None, Query(ge=1, le=MAX_VERSION, description="A specific version")
    ] = None,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_WAIT_SECONDS,
            allow_inf_nan=False,
            description="Long-poll: seconds to wait for a newer version",
        ),
    ] = None,
    after: Annotated[
        QueryInt | None,
        Query(ge=0, le=MAX_VERSION, description="Long-poll: return once a version > this exists"),
    ] = None,
) -> Response:
    """The read decision of :mod:`secretsd.server.reads`, after an optional long-poll wait."""
    secret_path(path)
    known = reads.parse_if_none_match(request.headers.get("if-none-match"))
    if wait is None or not state.allowed(caller, "read", path):
        return await reads.answer(state, caller, path, version, known=known)
    if version is not None:
        raise ValidationFailed(
            "wait cannot be combined with version: a given version never changes"
        )
    baseline = after if after is not None else (known or 0)
    newer = await _wait_unless_gone(
        request, state.watch.wait_for_newer(path, baseline, min(wait, state.settings.max_wait))
    )
    if newer is None:
        await state.audit(caller, "watch", path, "allowed", version=baseline, detail="timeout")
        return reads.not_modified(baseline)
    return await reads.answer(state, caller, path, None, newer_than=baseline)


@audited_by("secret-decision")
@router.put("/v1/secrets/{path:path}", summary="Write a new version", response_model=WriteResponse)
async def write_secret(
    path: str, body: WriteRequest, state: StateDep, caller: CallerDep
) -> WriteResponse:
    secret_path(path)
    version = await audited_mutation(
        state,
        caller,
        "write",
        "write",
        path,
        lambda: state.secrets.write(
            path,
            body.data,
            cas=body.cas,
            binary_keys=frozenset(body.binary_keys),
            custom_metadata=body.custom_metadata,
        ),
        version_of=lambda v: v,
    )
    return WriteResponse(path=path, version=version)


@audited_by("secret-decision")
@router.patch(
    "/v1/secrets/{path:path}",
    summary="Merge keys into the latest version (null removes a key)",
    response_model=WriteResponse,
)
async def patch_secret(
    path: str, body: PatchRequest, state: StateDep, caller: CallerDep
) -> WriteResponse:
    secret_path(path)
    version = await audited_mutation(
        state,
        caller,
        "write",
        "patch",
        path,
        lambda: state.secrets.patch(
            path, body.data, cas=body.cas, binary_keys=frozenset(body.binary_keys)
        ),
        version_of=lambda v: v,
    )
    return WriteResponse(path=path, version=version)


@audited_by("secret-decision")
@router.delete(
    "/v1/secrets/{path:path}",
    status_code=204,
    summary="Soft-delete the latest version (or ?versions=); ?destroy=true removes data for good",
)
async def delete_secret(
    path: str,
    state: StateDep,
    caller: CallerDep,
    versions: Annotated[str | None, Query(description="Comma-separated versions")] = None,
    destroy: bool = False,
) -> Response:
    secret_path(path)
    chosen = parse_versions(versions)
    action = "destroy" if destroy else "delete"
    await audited_mutation(
        state, caller, "delete", action, path, lambda: state.secrets.delete(path, chosen, destroy)
    )
    return Response(status_code=204)


@audited_by("secret-decision")
@router.post("/v1/undelete/{path:path}", status_code=204, summary="Restore soft-deleted versions")
async def undelete_secret(
    path: str, body: VersionsRequest, state: StateDep, caller: CallerDep
) -> Response:
    secret_path(path)
    await audited_mutation(
        state,
        caller,
        "write",
        "undelete",
        path,
        lambda: state.secrets.undelete(path, body.versions),
    )
    return Response(status_code=204)


@audited_by("secret-decision")
@router.post("/v1/destroy/{path:path}", status_code=204, summary="Permanently destroy versions")
async def destroy_secret(
    path: str, body: VersionsRequest, state: StateDep, caller: CallerDep
) -> Response:
    secret_path(path)
    await audited_mutation(
        state,
        caller,
        "delete",
        "destroy",
        path,
        lambda: state.secrets.delete(path, body.versions, destroy=True),
    )
    return Response(status_code=204)
