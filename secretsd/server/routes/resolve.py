"""``POST /v1/resolve``: many references in one call, each answered or failed on its own."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from secretsd.audit import AuditEvent
from secretsd.errors import Forbidden, NotFound, SecretsdError
from secretsd.ref import Reference, parse_reference
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.schemas import ResolveRequest, secret_path
from secretsd.server.state import AppState, Caller, audit_event

__all__ = ["router"]

router = APIRouter(tags=["resolve"])


def _error(ref: str, error: SecretsdError) -> dict[str, Any]:
    return {"ref": ref, "error": {"code": error.code, "message": error.message}}


async def _resolve_one(
    state: AppState, caller: Caller, text: str, events: list[AuditEvent]
) -> dict[str, Any]:
    def event(ref: Reference, outcome: str, version: int | None = None, detail: str = "") -> None:
        events.append(
            audit_event(
                caller.identity,
                action="resolve",
                outcome=outcome,
                path=ref.path,
                version=version,
                client=caller.client,
                request_id=caller.request_id,
                detail=detail,
            )
        )

    try:
        ref = parse_reference(text)
        secret_path(ref.path)
    except SecretsdError as error:
        return _error(text if text.startswith("secretsd://") else "<not a reference>", error)
    if not state.allowed(caller, "read", ref.path):
        event(ref, "denied", ref.version, "no policy allows")
        return _error(text, Forbidden(f"read on {ref.path!r} is not allowed for this token"))
    try:
        result = await state.secrets.read(ref.path, ref.version)
    except SecretsdError as error:
        event(ref, "error", ref.version, error.code)
        return _error(text, error)
    secret = result.secret
    item: dict[str, Any] = {"ref": text, "path": ref.path, "version": secret.version}
    if result.stale:
        item["stale"] = True
    if ref.key is None:
        item["data"] = dict(secret.data)
        item["binary_keys"] = sorted(secret.binary_keys)
    elif ref.key not in secret.data:
        event(ref, "error", secret.version, "not_found")
        keys = ", ".join(sorted(secret.data)) or "none"
        return _error(
            text,
            NotFound(
                f"secret {ref.path!r} version {secret.version} has no key {ref.key!r} "
                f"(keys: {keys})"
            ),
        )
    else:
        item["value"] = secret.data[ref.key]
        item["binary"] = ref.key in secret.binary_keys
    event(ref, "allowed", secret.version)
    return item


@audited_by("secret-decision")
@router.post("/v1/resolve", summary="Resolve many secretsd:// references in one call")
async def resolve(body: ResolveRequest, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    events: list[AuditEvent] = []
    results = await asyncio.gather(
        *(_resolve_one(state, caller, text, events) for text in body.refs)
    )
    await state.audit_log.record_many(events)
    state.metrics.audit_records.inc(len(events))
    return {"results": list(results)}
