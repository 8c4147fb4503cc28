"""Access: policies with a YAML editor that validates as you type, and "who can read?".

Validation is the server's own: the editor posts its text to
``POST /v1/policies/{name}/validate`` (the parser ``secretsd policy write``
uses), so the messages are exactly those a save would give.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from secretsd.console.session import ApiError
from secretsd.console.web import MutationDep, SessionDep, hx_redirect, render

__all__ = ["router"]

router = APIRouter()
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
TEMPLATE = "rules:\n  - path: apps/example/**\n    capabilities: [read, list]\n"


@router.get("/policies")
async def policies(ctx: SessionDep) -> Response:
    error = ""
    try:
        names = (await ctx.api.json("GET", "/v1/policies")).get("policies", [])
    except ApiError as failure:
        if failure.status == 401:
            raise
        names, error = [], failure.message
    return render(ctx.request, "policies.html", ctx, section="access", names=names, error=error)


@router.get("/policy-open")
async def policy_open(ctx: SessionDep, name: str = "") -> Response:
    if not NAME.fullmatch(name):
        return render(
            ctx.request,
            "error.html",
            ctx,
            status_code=400,
            message="a policy name is 1 to 64 letters, digits, '.', '_' or '-'",
        )
    return RedirectResponse(f"/ui/policies/{name}", status_code=303)


@router.get("/policies/{name}")
async def policy_editor(ctx: SessionDep, name: str) -> Response:
    if not NAME.fullmatch(name):
        return render(ctx.request, "error.html", ctx, status_code=400, message="bad policy name")
    text, exists = TEMPLATE, False
    try:
        policy = await ctx.api.json("GET", f"/v1/policies/{name}")
        text = yaml.safe_dump({"rules": policy["rules"]}, sort_keys=False)
        exists = True
    except ApiError as failure:
        if failure.status != 404:
            raise
    return render(
        ctx.request,
        "policy.html",
        ctx,
        section="policies",
        name=name,
        text=text,
        exists=exists,
    )


async def _validate(ctx: Any, name: str, text: str) -> dict[str, Any]:
    answer: dict[str, Any] = await ctx.api.json(
        "POST", f"/v1/policies/{name}/validate", json={"text": text}
    )
    return answer


@router.post("/policies/{name}/validate")
async def validate(ctx: MutationDep, name: str) -> Response:
    form = await ctx.request.form()
    text = form.get("text")
    try:
        verdict = await _validate(ctx, name, text if isinstance(text, str) else "")
    except ApiError as failure:
        if failure.status == 401:
            raise
        verdict = {"valid": False, "message": failure.message}
    return render(ctx.request, "validation.html", ctx, verdict=verdict)


@router.post("/policies/{name}/save")
async def save(ctx: MutationDep, name: str) -> Response:
    form = await ctx.request.form()
    text = form.get("text")
    try:
        verdict = await _validate(ctx, name, text if isinstance(text, str) else "")
        if not verdict.get("valid"):
            return render(ctx.request, "validation.html", ctx, verdict=verdict)
        await ctx.api.json("PUT", f"/v1/policies/{name}", json={"rules": verdict["rules"]})
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(
            ctx.request,
            "validation.html",
            ctx,
            verdict={"valid": False, "message": failure.message},
        )
    return hx_redirect(f"/ui/policies/{name}?saved=1")


@router.get("/access")
async def who_can(ctx: SessionDep, path: str = "") -> Response:
    path = path.strip().strip("/")
    answer: dict[str, Any] | None = None
    error = ""
    if path:
        try:
            answer = await ctx.api.json("GET", "/v1/access/who-can", params={"path": path})
        except ApiError as failure:
            if failure.status == 401:
                raise
            error = failure.message
    return render(
        ctx.request,
        "who_can.html",
        ctx,
        section="who",
        path=path,
        answer=answer,
        error=error,
    )
