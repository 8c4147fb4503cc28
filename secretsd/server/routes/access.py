"""Access questions the web console asks, answered by the API for every client.

- ``GET /v1/access/who-can?path=`` — which policies, live tokens, AppRoles and
  Kubernetes roles grant each capability on a path. Authorised by ``read`` on
  ``sys/access`` (it names tokens by accessor and roles by name).
- ``POST /v1/policies/{name}/validate`` — the server's own verdict on a policy
  document (YAML or JSON text, as ``secretsd policy write`` reads it) without
  storing it, so an editor can show the exact message a write would give.
  Authorised like a write of that policy (``admin`` on ``sys/policies/<name>``).
- ``GET /v1/audit/chain`` — walk the audit hash chain and report whether it is
  intact (``read`` on ``sys/audit``).

All three are authorised and audited (allowed or denied) by the one admin
dependency, :func:`secretsd.server.authorize.authorize`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from secretsd.audit_anchor import load_audit_key, read_checkpoints
from secretsd.audit_verify import ChainProblem, ChainReport, verify_audit
from secretsd.errors import SecretsdError
from secretsd.policy import CAPABILITIES, PolicySet
from secretsd.server.authorize import Admin, authorize
from secretsd.server.deps import StateDep
from secretsd.server.schemas import secret_path
from secretsd.server.state import AppState

__all__ = ["router", "who_can"]

router = APIRouter(tags=["access"])
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
GRANTS = tuple(c for c in CAPABILITIES if c != "deny")
MAX_TOKENS = 1000
SOURCE = "text"  # how messages name the document: "text line 3: not valid YAML"


class PolicyText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=256 * 1024, description="The policy file: YAML or JSON")


def who_can(state: AppState, path: str) -> dict[str, Any]:
    """Everything that grants each capability on ``path`` (blocking: run in a thread).

    Tokens, AppRoles and Kubernetes roles are judged on their whole policy set,
    so a deny in one of their policies removes a grant from another, exactly as
    a request would be decided.
    """
    answer: dict[str, Any] = {
        cap: {"policies": [], "tokens": [], "approles": [], "kubernetes_roles": []}
        for cap in GRANTS
    }
    denying: list[str] = []
    for name, policy in sorted(state.policies.items()):
        single = PolicySet([policy])
        if "deny" in single.capabilities(path):
            denying.append(name)
        for cap in GRANTS:
            if single.allows(cap, path):
                answer[cap]["policies"].append(name)

    def grants(policies: tuple[str, ...]) -> list[str]:
        rules = state.policy_set(tuple(policies))
        return [cap for cap in GRANTS if rules.allows(cap, path)]

    for info in state.tokens.list(limit=MAX_TOKENS):
        for cap in grants(info.policies):
            answer[cap]["tokens"].append(
                {"accessor": info.accessor, "display_name": info.display_name}
            )
    for role_name in state.approles.list_roles():
        role = state.approles.get_role(role_name)
        for cap in grants(role.policies):
            answer[cap]["approles"].append(role_name)
    for role_name in state.kubernetes.list_roles():
        k8s_role = state.kubernetes.get_role(role_name)
        for cap in grants(k8s_role.policies):
            answer[cap]["kubernetes_roles"].append(role_name)
    return {"path": path, "capabilities": answer, "denying_policies": denying}


@router.get("/v1/access/who-can", summary="Who can read (write, list, ...) a path")
async def who_can_route(
    state: StateDep,
    admin: Annotated[Admin, authorize("read", "sys/access", "who-can")],
    path: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    secret_path(path)
    return await asyncio.to_thread(who_can, state, path)


@router.post("/v1/policies/{name}/validate", summary="Validate a policy without storing it")
async def validate_policy(
    name: NameParam,
    body: PolicyText,
    admin: Annotated[Admin, authorize("admin", "sys/policies/{name}", "policy-validate")],
) -> dict[str, Any]:
    from secretsd.cli.policy_cmd import load_policy_file  # the CLI's parser: same messages

    try:
        policy = load_policy_file(name, body.text, SOURCE)
    except SecretsdError as error:  # "text: policy 'x' rule 2 ..." -> "policy 'x' rule 2 ..."
        return {"valid": False, "message": error.message.removeprefix(f"{SOURCE}: ")}
    return {"valid": True, "message": "", "rules": policy.to_document()}


@router.get("/v1/audit/chain", summary="Verify the audit log's hash chain")
async def audit_chain(
    state: StateDep, admin: Annotated[Admin, authorize("read", "sys/audit", "audit-verify")]
) -> dict[str, Any]:
    report = await asyncio.to_thread(_verify, state)
    problem = report.problem
    return {
        "checked": report.checked,
        "keyed": report.keyed,
        "checkpoints": report.checkpoints,
        "intact": problem is None,
        "problem": None if problem is None else {"seq": problem.seq, "reason": problem.reason},
    }


def _verify(state: AppState) -> ChainReport:
    """``secretsd audit verify`` with this server's audit key and checkpoint file.

    Replicas with keys of their own: their records cannot be vouched for here
    (reported as a problem); verify those with the CLI and every key file.
    """
    settings = state.settings
    key_file = settings.resolved_audit_key_file
    keys = [load_audit_key(key_file)] if key_file.exists() else []
    checkpoints, unreadable = read_checkpoints(settings.resolved_audit_checkpoint_file)
    report = verify_audit(state.engine, keys=keys, checkpoints=checkpoints)
    if report.problem is None and unreadable:
        return replace(report, problem=ChainProblem(0, unreadable[0]))
    return report
