"""``secretsd injector``: the mutating admission webhook, served over TLS.

``POST /mutate`` takes an ``admission.k8s.io/v1`` AdmissionReview and
answers with the same review carrying a JSONPatch (see ``injector``), or
``allowed: false`` and the reason when the pod's annotations are wrong. A
request that is not an AdmissionReview of a Pod is answered 400.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from secretsd.agent.injector import InjectorSettings, mutate
from secretsd.errors import ConfigError

__all__ = ["create_injector_app", "review"]

log = logging.getLogger(__name__)
MAX_BODY = 3 * 1024 * 1024


def review(body: Any, settings: InjectorSettings) -> dict[str, Any]:
    """The AdmissionReview answer to ``body``; ValueError when it is not one."""
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise ValueError("expected an admission.k8s.io/v1 AdmissionReview")
    request = body.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ValueError("the AdmissionReview has no request.uid")
    answer: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    kind = (request.get("kind") or {}).get("kind")
    pod = request.get("object")
    if kind == "Pod" and isinstance(pod, dict):
        try:
            patch = mutate(pod, settings)
        except ConfigError as error:
            meta = pod.get("metadata") or {}
            name = meta.get("name") or meta.get("generateName", "")
            where = f"{request.get('namespace', '')}/{name}"
            log.info("refused pod %s: %s", where, error.message)
            answer["allowed"] = False
            answer["status"] = {
                "code": 400,
                "reason": "BadRequest",
                "message": f"secretsd injector: {error.message}",
            }
        else:
            if patch:
                answer["patchType"] = "JSONPatch"
                answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}


def create_injector_app(settings: InjectorSettings) -> FastAPI:
    app = FastAPI(title="secretsd injector", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/mutate")
    async def mutate_route(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "the AdmissionReview is larger than 3 MiB"}, 413)
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        try:
            return JSONResponse(review(body, settings))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, 400)

    return app
