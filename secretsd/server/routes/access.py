"""Access questions the web console asks, answered by the API for every client.

- ``GET /v1/access/who-can?path=`` — which policies, live tokens, AppRoles and
  Kubernetes roles grant each capability on a path. Authorised by ``read`` on
  ``sys/access`` (it names tokens by accessor and roles by name) and audited.
- ``POST /v1/policies/{name}/validate`` — the server's own verdict on a policy
  document (YAML or JSON text, as ``secretsd policy write`` reads it) without
  storing it, so an editor can show the exact message a write would give.
  Authorised like a write of that policy (``admin`` on ``sys/policies/<name>``).
- ``GET /v1/audit/chain`` — walk the audit hash chain and report whether it is
  intact (``read`` on ``sys/audit``), audited.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from secretsd.audit import verify_chain
from secretsd.errors import SecretsdError
from secretsd.policy import CAPABILITIES, PolicySet
from secretsd.server.deps import CallerDep, StateDep
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
    caller: CallerDep,
    path: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    secret_path(path)
    await state.guard(caller, "read", "sys/access", "who-can")
    answer = await asyncio.to_thread(who_can, state, path)
    await state.audit(caller, "who-can", path, "allowed")
    return answer


@router.post("/v1/policies/{name}/validate", summary="Validate a policy without storing it")
async def validate_policy(
    name: NameParam, body: PolicyText, state: StateDep, caller: CallerDep
) -> dict[str, Any]:
    await state.guard(caller, "admin", f"sys/policies/{name}", "policy-validate")
    from secretsd.cli.policy_cmd import load_policy_file  # the CLI's parser: same messages

    try:
        policy = load_policy_file(name, body.text, SOURCE)
    except SecretsdError as error:  # "text: policy 'x' rule 2 ..." -> "policy 'x' rule 2 ..."
        return {"valid": False, "message": error.message.removeprefix(f"{SOURCE}: ")}
    return {"valid": True, "message": "", "rules": policy.to_document()}


@router.get("/v1/audit/chain", summary="Verify the audit log's hash chain")
async def audit_chain(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await state.guard(caller, "read", "sys/audit", "audit-verify")
    checked, problem = await asyncio.to_thread(verify_chain, state.engine)
    await state.audit(
        caller, "audit-verify", "sys/audit", "allowed", detail="ok" if problem is None else "broken"
    )
    return {
        "checked": checked,
        "intact": problem is None,
        "problem": None if problem is None else {"seq": problem.seq, "reason": problem.reason},
    }
