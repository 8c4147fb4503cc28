"""``/v1/metadata/{path}``: version history, custom metadata (provenance), listing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from secretsd.backends.base import SecretMetadata
from secretsd.errors import Forbidden, SecretsdError
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.routes.secrets import audited_mutation
from secretsd.server.schemas import RESERVED_TOP, MetadataUpdate, secret_path
from secretsd.server.state import AppState, Caller

__all__ = ["router"]

router = APIRouter(tags=["metadata"])


def metadata_json(meta: SecretMetadata) -> dict[str, Any]:
    return {
        "path": meta.path,
        "current_version": meta.current_version,
        "oldest_version": meta.oldest_version,
        "created_time": meta.created_time,
        "updated_time": meta.updated_time,
        "max_versions": meta.max_versions,
        "cas_required": meta.cas_required,
        "custom_metadata": dict(meta.custom_metadata),
        "binary_keys": sorted(meta.binary_keys),
        "versions": [
            {
                "version": info.version,
                "created_time": info.created_time,
                "deletion_time": info.deletion_time,
                "destroyed": info.destroyed,
            }
            for info in meta.versions
        ],
    }


async def _list(state: AppState, caller: Caller, prefix: str) -> dict[str, list[str]]:
    """List ``prefix``, showing only entries the caller may use (or folders leading to some)."""
    secret_path(prefix, allow_empty=True)
    shown = prefix or "/"
    rules = state.policy_set(caller.identity.policies)
    if not rules.may_list(prefix):
        await state.audit(caller, "list", shown, "denied", detail="no policy allows")
        raise Forbidden(
            f"list on {shown!r} is not allowed for {caller.identity.display_name or 'this token'}; "
            "ask an admin for a policy that grants 'list' below it"
        )
    try:
        keys = await state.secrets.list(prefix)
    except SecretsdError as error:
        await state.audit_error(caller, "list", shown, error, None)
        raise
    base = f"{prefix}/" if prefix else ""
    visible = [
        key
        for key in keys
        if not (base + key).startswith(f"{RESERVED_TOP}/")
        and rules.sees(base + key.rstrip("/"), folder=key.endswith("/"))
    ]
    await state.audit(caller, "list", shown, "allowed", detail=f"{len(visible)} of {len(keys)}")
    return {"keys": visible}


@audited_by("secret-decision")
@router.get("/v1/metadata", summary="List secrets at the top (?list=true)")
async def list_root(
    state: StateDep, caller: CallerDep, list: Annotated[bool, Query()] = False
) -> dict[str, list[str]]:
    return await _list(state, caller, "")


@audited_by("secret-decision")
@router.get(
    "/v1/metadata/{path:path}",
    summary="Metadata and version history of a secret, or ?list=true to list a prefix",
)
async def read_metadata(
    path: str, state: StateDep, caller: CallerDep, list: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    if list:
        return await _list(state, caller, path.strip("/"))
    secret_path(path)
    await state.guard(caller, "read", path, "metadata")
    try:
        meta = await state.secrets.metadata(path)
    except SecretsdError as error:
        await state.audit_error(caller, "metadata", path, error, None)
        raise
    await state.audit(caller, "metadata", path, "allowed", version=meta.current_version)
    return metadata_json(meta)


@audited_by("secret-decision")
@router.put(
    "/v1/metadata/{path:path}",
    status_code=204,
    summary="Update custom metadata (merged; '' removes a key), max_versions, cas_required",
)
async def update_metadata(
    path: str, body: MetadataUpdate, state: StateDep, caller: CallerDep
) -> Response:
    secret_path(path)
    await audited_mutation(
        state,
        caller,
        "write",
        "update-metadata",
        path,
        lambda: state.secrets.update_metadata(
            path,
            body.custom_metadata,
            max_versions=body.max_versions,
            cas_required=body.cas_required,
        ),
    )
    return Response(status_code=204)


@audited_by("secret-decision")
@router.delete(
    "/v1/metadata/{path:path}",
    status_code=204,
    summary="Delete a secret entirely: every version and its metadata",
)
async def delete_metadata(path: str, state: StateDep, caller: CallerDep) -> Response:
    secret_path(path)
    await audited_mutation(
        state, caller, "delete", "delete-all", path, lambda: state.secrets.delete_all(path)
    )
    return Response(status_code=204)
