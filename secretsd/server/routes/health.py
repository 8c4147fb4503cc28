"""``/healthz`` (process alive), ``/readyz`` (Vault, database, audit usable), ``/metrics``."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from secretsd.db.engine import probe_writable
from secretsd.server.deps import StateDep
from secretsd.server.metrics import CONTENT_TYPE_LATEST
from secretsd.server.state import AppState

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


#: How long /readyz waits for the database's write lock before calling it not ready.
_DATABASE_PROBE_SECONDS = 1.0


async def _database_check(state: AppState) -> tuple[bool, str]:
    """Writable within a second (a locked database is not ready), never hanging /readyz."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(probe_writable, state.engine, _DATABASE_PROBE_SECONDS),
            _DATABASE_PROBE_SECONDS + 1,
        )
    except TimeoutError:
        return False, "the database did not answer within 2 s"


@router.get("/readyz", summary="Readiness: Vault unsealed, database writable, audit writable")
async def readyz(state: StateDep) -> Response:
    vault, database = await asyncio.gather(
        asyncio.to_thread(state.backend.health), _database_check(state)
    )
    db_ok, db_detail = database
    audit_ok, audit_detail = state.audit_log.health()
    ready = vault.ready and db_ok and audit_ok
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            "vault": {"ok": vault.ready, "detail": vault.detail},
            "database": {"ok": db_ok, "detail": db_detail},
            "audit": {"ok": audit_ok, "detail": audit_detail},
        },
    }
    return Response(
        content=orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: StateDep) -> Response:
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
