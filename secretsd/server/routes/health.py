"""``/healthz`` (process alive), ``/readyz`` (Vault + database usable), ``/metrics``."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from secretsd.server.deps import StateDep
from secretsd.server.metrics import CONTENT_TYPE_LATEST

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Vault reachable and unsealed, database reachable")
async def readyz(state: StateDep) -> Response:
    vault, database = await asyncio.gather(
        asyncio.to_thread(state.backend.health), asyncio.to_thread(state.database_ok)
    )
    db_ok, db_detail = database
    ready = vault.ready and db_ok
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            "vault": {"ok": vault.ready, "detail": vault.detail},
            "database": {"ok": db_ok, "detail": db_detail},
        },
    }
    return Response(
        content=orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: StateDep) -> Response:
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
