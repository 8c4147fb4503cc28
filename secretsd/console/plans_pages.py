"""Migration plans: open a plan saved by ``secretsd migrate plan --out`` and browse it.

A saved plan holds no value by design (targets, sources, fingerprints, target
versions; see ``secretsd.migrations.plan``). The console does not take that on
trust: the file is read with the importers' own parser (``Plan.from_json``)
and only the fields the plan format defines are shown. Any other field (a
``value`` someone added, a hand-edited key) is dropped unread: the page says
where it was, never what it held or its name. Fingerprints are not shown
either. The file is parsed in memory and not stored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from secretsd.errors import InvalidInput
from secretsd.migrations.model import Source
from secretsd.migrations.plan import Plan

__all__ = ["PlanView", "read_plan", "router"]

router = APIRouter()

# Every field the plan format (secretsd-migrate-plan/1) has, per place.
_TOP = {"schema", "plan_id", "source", "mapping", "summary", "items", "targets"}
_TOP |= {"duplicates", "errors"}
_ITEM = {"action", "target", "source", "origin", "fingerprint", "binary"}
_ITEM |= {"plaintext_finding", "duplicate_of", "error"}
_SOURCE = {"type", "file", "var_path", "namespace", "name", "key"}
_PROBLEM = {"code", "where", "message"}
_DUPLICATE = {"keep", "reference_from", "sources", "proposal"}
_PLAN_SOURCE = {"type", "root", "vault_ids", "scan_plaintext", "path", "namespaces"}
_PLAN_SOURCE |= {"skip_types", "context", "selector"}
_MAPPING = {"prefix", "rules_file", "rules_digest"}
_ACTIONS = ("new", "changed", "unchanged", "error")


class PlanFileError(UploadRefused):
    """The upload is not a readable plan (the message says why and how to fix it)."""


@dataclass
class PlanView:
    """What the page shows of one plan: only fields of the plan format."""

    plan_id: str
    source: dict[str, Any]
    mapping: dict[str, Any]
    counts: dict[str, int]
    items: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    errors: list[dict[str, str]]
    dropped: list[str] = field(default_factory=list)


def _unknown(value: Any, allowed: set[str], where: str, dropped: list[str]) -> None:
    if isinstance(value, Mapping):
        extra = sum(1 for name in value if name not in allowed)
        if extra:
            dropped.append(f"{where}: {extra} field{'s' if extra > 1 else ''}")


def _foreign_fields(raw: Mapping[str, Any]) -> list[str]:
    """Where the file has fields the plan format has not (by place; never their names)."""
    dropped: list[str] = []
    _unknown(raw, _TOP, "top level", dropped)
    _unknown(raw.get("source"), _PLAN_SOURCE, "source", dropped)
    _unknown(raw.get("mapping"), _MAPPING, "mapping", dropped)
    summary = raw.get("summary")
    _unknown(summary, set(_ACTIONS), "summary", dropped)
    for index, item in enumerate(raw.get("items") or []):
        where = f"items[{index}]"
        _unknown(item, _ITEM, where, dropped)
        if isinstance(item, Mapping):
            _unknown(item.get("source"), _SOURCE, f"{where}.source", dropped)
            _unknown(item.get("error"), _PROBLEM, f"{where}.error", dropped)
    for index, group in enumerate(raw.get("duplicates") or []):
        where = f"duplicates[{index}]"
        _unknown(group, _DUPLICATE, where, dropped)
        if isinstance(group, Mapping):
            for number, source in enumerate(group.get("sources") or []):
                _unknown(source, _SOURCE, f"{where}.sources[{number}]", dropped)
    for index, problem in enumerate(raw.get("errors") or []):
        _unknown(problem, _PROBLEM, f"errors[{index}]", dropped)
    return dropped


def _label(source: Any) -> str:
    if not isinstance(source, Mapping):
        return ""
    label: str = Source.from_json({k: v for k, v in source.items() if k in _SOURCE}).label()
    return label


def _duplicates(raw: Any) -> list[dict[str, Any]]:
    groups = []
    for group in raw if isinstance(raw, list) else []:
        if not isinstance(group, Mapping):
            raise PlanFileError("duplicates: each entry must be an object; make a new plan")
        groups.append(
            {
                "keep": str(group.get("keep") or ""),
                "reference_from": [str(t) for t in group.get("reference_from") or []],
                "sources": [_label(s) for s in group.get("sources") or []],
                "proposal": str(group.get("proposal") or ""),
            }
        )
    return groups


def read_plan(raw: bytes) -> PlanView:
    """A plan's view from its JSON bytes; unknown fields are dropped and reported."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise PlanFileError(
            f"the file is not JSON ({error.__class__.__name__}); open the file written by "
            "`secretsd migrate plan ... --out FILE` (or its `--json` output)"
        ) from None
    try:
        plan = Plan.from_json(document, "the file")
        dropped = _foreign_fields(document)
        duplicates = _duplicates(document.get("duplicates"))
    except InvalidInput as error:
        raise PlanFileError(error.message) from None
    except (AttributeError, TypeError, ValueError):
        raise PlanFileError(
            "the file is a damaged migration plan (a field has the wrong type); make a new "
            "one with `secretsd migrate plan`"
        ) from None
    items = [
        {
            "path": item.path,
            "key": item.key,
            "target": item.target,
            "action": item.action,
            "origin": item.origin,
            "source": item.source.label(),
            "binary": item.binary,
            "finding": item.note if item.origin == "plaintext" else "",
            "duplicate_of": item.duplicate_of or "",
            "problem": str(item.problem) if item.problem else "",
        }
        for item in plan.items
    ]
    per_path = Counter(item.path for item in plan.items)
    targets = [
        {"path": path, "version": version, "count": per_path[path]}
        for path, version in sorted(plan.targets.items())
    ]
    return PlanView(
        plan_id=plan.plan_id,
        source={k: v for k, v in plan.source.items() if k in _PLAN_SOURCE},
        mapping={k: v for k, v in plan.mapping.items() if k in _MAPPING},
        counts={action: n for action, n in plan.counts().items() if n},
        items=items,
        targets=targets,
        duplicates=duplicates,
        errors=[p.problem.to_json() for p in plan.errors if p.problem],
        dropped=dropped,
    )


@router.get("/plans")
async def plans_page(ctx: SessionDep) -> Response:
    return render_upload_page(ctx, "plans.html", "plans", plan=None)


@router.post("/plans")
async def plans_open(ctx: MutationDep) -> Response:
    plan, error = await parse_upload(ctx, "plan", read_plan)
    facets = {
        name: sorted({str(i[name]) for i in plan.items}) if plan else []
        for name in ("action", "origin")
    }
    return render_upload_page(ctx, "plans.html", "plans", plan=plan, facets=facets, error=error)
