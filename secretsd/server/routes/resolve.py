"""``POST /v1/resolve``: many references in one call, each answered or failed on its own."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from secretsd.audit import AuditEvent
from secretsd.errors import NotFound, SecretsdError
from secretsd.ref import parse_reference
from secretsd.server import reads
from secretsd.server.deps import CallerDep, StateDep, audited_by
from secretsd.server.schemas import ResolveRequest, secret_path
from secretsd.server.state import AppState, Caller

__all__ = ["router"]

router = APIRouter(tags=["resolve"])


def _error(ref: str, error: SecretsdError) -> dict[str, Any]:
    return {"ref": ref, "error": {"code": error.code, "message": error.message}}


async def _resolve_one(
    state: AppState, caller: Caller, text: str, events: list[AuditEvent]
) -> dict[str, Any]:
    """One reference through the read decision; its audit record joins the batch."""
    try:
        ref = parse_reference(text)
        secret_path(ref.path)
    except SecretsdError as error:
        return _error(text if text.startswith("secretsd://") else "<not a reference>", error)
    decision = await reads.decide(state, caller, ref.path, ref.version, action="resolve")
    if decision.error is not None or decision.result is None:
        events.append(decision.event)
        return _error(text, decision.error or NotFound(f"{ref.path!r} not found"))
    secret = decision.result.secret
    item: dict[str, Any] = {"ref": text, "path": ref.path, "version": secret.version}
    if decision.result.stale:
        item["stale"] = True
    if ref.key is None:
        item["data"] = dict(secret.data)
        item["binary_keys"] = sorted(secret.binary_keys)
    elif ref.key not in secret.data:
        events.append(decision.with_event(outcome="error", detail="not_found").event)
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
    events.append(decision.event)
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
