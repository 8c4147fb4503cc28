"""Leaks: upload a scan report (SARIF 2.1 or ``secretsd scan --json``) and browse it.

The report is parsed in memory and rendered once; nothing is stored. Only
locations, rules and confidence are shown: matched text, snippets and
messages (which may hold the leaked value, redacted or not) are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from secretsd.console.web import (
    MutationDep,
    SessionDep,
    UploadRefused,
    parse_upload,
    render_upload_page,
)

__all__ = ["parse_report", "router"]

router = APIRouter()


class ReportError(UploadRefused, ValueError):
    pass


def _sarif(document: dict[str, Any]) -> list[dict[str, Any]]:
    findings = []
    for run in document.get("runs") or []:
        provenance = run.get("versionControlProvenance") or [{}]
        repository = str(provenance[0].get("repositoryUri") or "")
        for result in run.get("results") or []:
            location = ((result.get("locations") or [{}])[0]).get("physicalLocation") or {}
            props = result.get("properties") or {}
            findings.append(
                {
                    "repository": str(props.get("repository") or repository or "(this report)"),
                    "rule": str(result.get("ruleId") or ""),
                    "path": str((location.get("artifactLocation") or {}).get("uri") or ""),
                    "line": (location.get("region") or {}).get("startLine"),
                    "confidence": str(props.get("confidence") or result.get("level") or "unknown"),
                    "commit": str(props.get("commit") or "")[:12],
                }
            )
    return findings


def _scan_json(document: dict[str, Any]) -> list[dict[str, Any]]:
    findings = []
    for item in document.get("findings") or []:
        findings.append(
            {
                "repository": str(item.get("repository") or "(this report)"),
                "rule": str(item.get("rule") or ""),
                "path": str(item.get("path") or ""),
                "line": item.get("line"),
                "confidence": str(item.get("confidence") or item.get("severity") or "unknown"),
                "commit": str(item.get("commit") or "")[:12],
            }
        )
    return findings


def parse_report(raw: bytes) -> list[dict[str, Any]]:
    """Findings of a SARIF or secretsd JSON report, without any matched text."""
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise ReportError(f"the report is not JSON ({error.__class__.__name__})") from None
    if not isinstance(document, dict):
        raise ReportError("the report is not a JSON object")
    if "runs" in document:
        return _sarif(document)
    if "findings" in document:
        return _scan_json(document)
    raise ReportError("not a SARIF report ('runs') nor a secretsd scan JSON report ('findings')")


@router.get("/leaks")
async def leaks_page(ctx: SessionDep) -> Response:
    return render_upload_page(ctx, "leaks.html", "leaks", findings=None)


@router.post("/leaks")
async def leaks_upload(ctx: MutationDep) -> Response:
    findings, error = await parse_upload(ctx, "report", parse_report)
    facets = {
        name: sorted({str(f[name]) for f in findings or []})
        for name in ("repository", "rule", "confidence")
    }
    return render_upload_page(
        ctx, "leaks.html", "leaks", findings=findings, facets=facets, error=error
    )
