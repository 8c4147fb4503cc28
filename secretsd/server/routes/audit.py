"""``GET /v1/audit``: query the audit log (authorised by ``read`` on ``sys/audit``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from secretsd.audit import AuditFilter, query_records
from secretsd.errors import ValidationFailed
from secretsd.server.authorize import Admin, authorize
from secretsd.server.deps import StateDep

__all__ = ["router"]

router = APIRouter(tags=["audit"])


def _iso(value: str, name: str) -> str:
    """Accept ISO 8601 times (``2026-11-24``, ``...T10:00:00Z``, offsets) → canonical UTC."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"{name} {value[:40]!r} is not an ISO 8601 time; write e.g. 2026-11-24T10:00:00Z"
        ) from None
    parsed = parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@router.get("/v1/audit", summary="Query audit records with filters and a cursor")
async def query_audit(
    state: StateDep,
    _admin: Annotated[Admin, authorize("read", "sys/audit", "audit-query")],
    path_prefix: str = "",
    identity: str = "",
    outcome: Annotated[Literal["", "allowed", "denied", "error"], Query()] = "",
    action: str = "",
    since: str = "",
    until: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str = "",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> dict[str, Any]:
    if cursor and not cursor.isdigit():
        raise ValidationFailed("cursor must be the next_cursor value of a previous page")
    where = AuditFilter(
        path_prefix=path_prefix,
        identity=identity,
        outcome=outcome,
        action=action,
        since=_iso(since, "since"),
        until=_iso(until, "until"),
    )
    records, next_seq = await asyncio.to_thread(
        lambda: query_records(
            state.engine,
            where,
            limit=limit,
            after=int(cursor) if cursor else None,
            newest_first=order == "desc",
        )
    )
    return {"records": records, "next_cursor": str(next_seq) if next_seq is not None else None}
