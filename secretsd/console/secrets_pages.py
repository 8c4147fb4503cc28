"""Secrets: the tree with search, a secret's versions, reveal one key, write, delete.

Values reach the browser only in the answer to a reveal (a POST, so never in
a URL or the history, with ``Cache-Control: no-store``) or as a binary
download; every one comes from ``GET /v1/secrets/...``, which audits it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from secretsd.console.session import ApiError
from secretsd.console.web import (
    Ctx,
    MutationDep,
    SessionDep,
    hx_redirect,
    read_upload,
    render,
    upload_limit,
)

__all__ = ["router"]

router = APIRouter()
SEARCH_MAX_LISTS = 200
SEARCH_MAX_HITS = 500
MAX_ROWS = 50


def max_upload(request: Request) -> int:
    """The largest file a secret value may be uploaded from: its base64 must fit in the
    API's body limit (``SECRETSD_MAX_BODY_BYTES``), as must the upload itself."""
    return upload_limit(request) * 3 // 4


def _q(path: str) -> str:
    return quote(path.strip("/"), safe="/")


async def _list(ctx: Ctx, prefix: str) -> list[str]:
    url = f"/v1/metadata/{_q(prefix)}?list=true" if prefix else "/v1/metadata?list=true"
    answer = await ctx.api.json("GET", url)
    return [str(k) for k in answer.get("keys", [])]


@router.get("/secrets")
async def tree(ctx: SessionDep, prefix: str = "") -> Response:
    prefix = prefix.strip("/")
    error = ""
    try:
        keys = await _list(ctx, prefix)
    except ApiError as failure:
        if failure.status == 401:
            raise
        keys, error = [], failure.message
    base = f"{prefix}/" if prefix else ""
    entries = [
        {"name": key, "path": base + key.rstrip("/"), "folder": key.endswith("/")}
        for key in sorted(keys)
    ]
    crumbs = []
    parts = prefix.split("/") if prefix else []
    for index, part in enumerate(parts):
        crumbs.append({"name": part, "prefix": "/".join(parts[: index + 1])})
    return render(
        ctx.request,
        "secrets.html",
        ctx,
        section="secrets",
        prefix=prefix,
        entries=entries,
        crumbs=crumbs,
        error=error,
        max_upload=max_upload(ctx.request),
    )


@router.get("/secrets/search")
async def search(ctx: SessionDep, q: str = "", prefix: str = "") -> Response:
    """Walk the tree below ``prefix`` (bounded) for paths containing ``q``."""
    needle = q.strip().lower()[:200]
    hits: list[str] = []
    truncated = False
    if needle:
        pending = [prefix.strip("/")]
        lists = 0
        while pending and len(hits) < SEARCH_MAX_HITS:
            if lists >= SEARCH_MAX_LISTS:
                truncated = True
                break
            current = pending.pop(0)
            lists += 1
            try:
                keys = await _list(ctx, current)
            except ApiError as failure:
                if failure.status == 401:
                    raise
                continue
            base = f"{current}/" if current else ""
            for key in sorted(keys):
                if key.endswith("/"):
                    pending.append(base + key.rstrip("/"))
                elif needle in (base + key).lower():
                    hits.append(base + key)
    return render(ctx.request, "search_results.html", ctx, hits=hits, truncated=truncated, query=q)


async def _writers(ctx: Ctx, path: str) -> dict[int, str] | None:
    """Who wrote each version, from the audit log (None: the caller may not read it)."""
    try:
        answer = await ctx.api.json(
            "GET",
            "/v1/audit",
            params={"path_prefix": path, "outcome": "allowed", "order": "desc", "limit": 1000},
        )
    except ApiError as failure:
        if failure.status == 401:
            raise
        return None
    writers: dict[int, str] = {}
    for record in answer.get("records", []):
        if record.get("path") != path or record.get("version") is None:
            continue
        if record.get("action") in ("write", "patch"):
            writers.setdefault(
                int(record["version"]), record.get("display_name") or record.get("identity", "")
            )
    return writers


@router.get("/secret/{path:path}")
async def secret_page(ctx: SessionDep, path: str, version: int | None = None) -> Response:
    path = path.strip("/")
    meta = await ctx.api.json("GET", f"/v1/metadata/{_q(path)}")
    writers = await _writers(ctx, path)
    consumers: list[dict[str, Any]] | None
    try:
        consumers = (await ctx.api.json("GET", f"/v1/consumers/{_q(path)}")).get("consumers", [])
    except ApiError as failure:
        if failure.status == 401:
            raise
        consumers = None
    shown = version or meta.get("current_version")
    versions = sorted(meta.get("versions", []), key=lambda v: -int(v["version"]))
    return render(
        ctx.request,
        "secret.html",
        ctx,
        section="secrets",
        path=path,
        meta=meta,
        versions=versions,
        writers=writers,
        consumers=consumers,
        shown=shown,
        max_upload=max_upload(ctx.request),
    )


@router.get("/secret-keys/{path:path}")
async def secret_keys(ctx: SessionDep, path: str, version: int | None = None) -> Response:
    """The key names of one version (the API read is audited; values stay on the server)."""
    path = path.strip("/")
    params = {"version": version} if version else {}
    try:
        secret = await ctx.api.json("GET", f"/v1/secrets/{_q(path)}", params=params)
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(ctx.request, "flash.html", ctx, error=failure.message)
    binary = set(secret.get("binary_keys", []))
    keys = [{"name": k, "binary": k in binary} for k in sorted(secret.get("data", {}))]
    return render(
        ctx.request,
        "keys.html",
        ctx,
        path=path,
        version=secret.get("version"),
        keys=keys,
    )


async def _read_value(ctx: Ctx, path: str, version: str, key: str) -> tuple[str, bool]:
    params = {"version": version} if version.isdigit() else {}
    secret = await ctx.api.json("GET", f"/v1/secrets/{_q(path)}", params=params)
    data = secret.get("data", {})
    if key not in data:
        raise ApiError(404, "not_found", f"version {secret.get('version')} has no key {key!r}")
    return str(data[key]), key in set(secret.get("binary_keys", []))


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/reveal")
async def reveal(ctx: MutationDep) -> Response:
    """One key's value, as a fragment (audited by the API read behind it)."""
    form = await _form(ctx.request)
    try:
        value, binary = await _read_value(
            ctx, form.get("path", ""), form.get("version", ""), form.get("key", "")
        )
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(ctx.request, "flash.html", ctx, error=failure.message)
    return render(
        ctx.request,
        "revealed.html",
        ctx,
        value=value,
        binary=binary,
        slot=form.get("slot", ""),
    )


@router.get("/masked")
async def masked(ctx: SessionDep) -> Response:
    return render(ctx.request, "masked.html", ctx)


@router.post("/download")
async def download(ctx: MutationDep) -> Response:
    """A binary value as a file (the browser saves it; nothing is shown)."""
    form = await _form(ctx.request)
    key = form.get("key", "")
    value, binary = await _read_value(ctx, form.get("path", ""), form.get("version", ""), key)
    try:
        content = base64.b64decode(value, validate=True) if binary else value.encode()
    except (binascii.Error, ValueError):
        content = value.encode()
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in key) or "value"
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _rows(form: dict[str, str]) -> tuple[dict[str, str | None], list[str]]:
    """Key/value rows of the write form: (changes, problems). A ticked 'remove' is None."""
    changes: dict[str, str | None] = {}
    problems: list[str] = []
    for index in range(MAX_ROWS):
        key = form.get(f"key_{index}", "").strip()
        value = form.get(f"value_{index}", "")
        if not key:
            if value:
                problems.append(f"row {index + 1} has a value but no key name")
            continue
        if key in changes:
            problems.append(f"key {key!r} appears twice")
        changes[key] = None if form.get(f"remove_{index}") else value
    return changes, problems


@router.get("/write-row")
async def write_row(ctx: SessionDep, index: int = 0) -> Response:
    return render(ctx.request, "write_row.html", ctx, index=min(max(index, 0), MAX_ROWS - 1))


@router.post("/write")
async def write(ctx: MutationDep) -> Response:
    """Create or update (replace) or patch (merge) a secret, with check-and-set."""
    form = await _form(ctx.request)
    path = form.get("path", "").strip().strip("/")
    mode = form.get("mode", "patch")
    changes, problems = _rows(form)
    cas_text = form.get("cas", "").strip()
    if not path:
        problems.append("give the secret's path, e.g. apps/web/db")
    if cas_text and not cas_text.isdigit():
        problems.append("check-and-set is the version number you expect to replace (0 = new)")
    if not changes:
        problems.append("add at least one key")
    if mode == "write" and any(v is None for v in changes.values()):
        problems.append("'remove' only applies to a patch; a replace keeps just the listed keys")
    if problems:
        return render(ctx.request, "flash.html", ctx, error="; ".join(problems))
    body: dict[str, Any] = {"data": changes}
    if cas_text:
        body["cas"] = int(cas_text)
    try:
        answer = await ctx.api.json(
            "PATCH" if mode == "patch" else "PUT", f"/v1/secrets/{_q(path)}", json=body
        )
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(ctx.request, "flash.html", ctx, error=failure.message)
    return hx_redirect(f"/ui/secret/{_q(path)}?written={answer['version']}")


def _upload_body(key: str, raw: bytes, cas: int | None) -> dict[str, Any]:
    """The API body for one key from a file: UTF-8 text as is, other bytes as binary.

    Binary means base64 in ``data`` and the key in ``binary_keys``, marked in the
    very version written (DESIGN.md), so a download gives back the exact bytes.
    """
    try:
        body: dict[str, Any] = {"data": {key: raw.decode("utf-8")}, "binary_keys": []}
    except UnicodeDecodeError:
        body = {"data": {key: base64.b64encode(raw).decode("ascii")}, "binary_keys": [key]}
    if cas is not None:
        body["cas"] = cas
    return body


@router.post("/upload")
async def upload(ctx: MutationDep) -> Response:
    """Create a secret or set one key of it from a file, with check-and-set."""
    form = await ctx.request.form()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    path = fields.get("path", "").strip("/")
    key = fields.get("key", "")
    cas_text = fields.get("cas", "")
    problems = []
    if not path:
        problems.append("give the secret's path, e.g. apps/web/tls")
    if not key:
        problems.append("give the key the file's content goes to, e.g. keystore")
    if cas_text and not cas_text.isdigit():
        problems.append("check-and-set is the version number you expect to replace (0 = new)")
    limit = max_upload(ctx.request)
    raw, error = await read_upload(form.get("file"), limit, "value")
    if error:
        problems.append(error)
    if problems or raw is None:
        return render(ctx.request, "flash.html", ctx, error="; ".join(problems))
    # A new secret is written whole; an existing one is patched (its other keys stay).
    method = "PUT" if fields.get("mode") == "write" else "PATCH"
    body = _upload_body(key, raw, int(cas_text) if cas_text else None)
    try:
        answer = await ctx.api.json(method, f"/v1/secrets/{_q(path)}", json=body)
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(ctx.request, "flash.html", ctx, error=failure.message)
    return hx_redirect(f"/ui/secret/{_q(path)}?written={answer['version']}")


@router.post("/secret-action")
async def secret_action(ctx: MutationDep) -> Response:
    """Delete, undelete or destroy versions (the page asks to confirm first)."""
    form = await _form(ctx.request)
    path = form.get("path", "").strip("/")
    op = form.get("op", "")
    versions = [int(v) for v in form.get("versions", "").split(",") if v.strip().isdigit()]
    if not versions:
        return render(ctx.request, "flash.html", ctx, error="choose a version")
    joined = ",".join(map(str, versions))
    try:
        if op == "delete":
            await ctx.api.call("DELETE", f"/v1/secrets/{_q(path)}", params={"versions": joined})
        elif op == "undelete":
            await ctx.api.call("POST", f"/v1/undelete/{_q(path)}", json={"versions": versions})
        elif op == "destroy":
            await ctx.api.call("POST", f"/v1/destroy/{_q(path)}", json={"versions": versions})
        else:
            return render(ctx.request, "flash.html", ctx, error=f"unknown action {op[:40]!r}")
    except ApiError as failure:
        if failure.status == 401:
            raise
        return render(ctx.request, "flash.html", ctx, error=failure.message)
    return hx_redirect(f"/ui/secret/{_q(path)}")
