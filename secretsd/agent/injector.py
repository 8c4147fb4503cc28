"""The injector's decision: which JSONPatch turns an annotated pod into one with the agent.

Like Vault Agent Injector, for a pod annotated ``secretsd.io/inject: "true"``
it adds

- volumes: ``secretsd`` (in-memory emptyDir, the rendered files),
  ``secretsd-podinfo`` (downward API: the pod's annotations, which configure
  the agent) and ``secretsd-token`` (a projected service-account token for
  the audience ``secretsd``, so the pod's own API token is never sent);
- the init container ``secretsd-agent-init`` first (so the app's own init
  containers see the files too) and, unless ``init-only``, the sidecar
  ``secretsd-agent``;
- a read-only mount of ``/secretsd`` in every app container;
- ``shareProcessNamespace: true`` when the on-change action is a signal;
- the annotation ``secretsd.io/status: injected``, which makes a second
  pass a no-op (admission can run twice: reinvocation, retries).

Bad annotations are refused with the agent's own config error, so the pod
author reads the same message the agent would print.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secretsd.agent.config import ANNOTATION_PREFIX, from_annotations
from secretsd.errors import ConfigError

__all__ = ["InjectorSettings", "mutate"]

INJECT = ANNOTATION_PREFIX + "inject"
STATUS = ANNOTATION_PREFIX + "status"
INIT_NAME, SIDECAR_NAME = "secretsd-agent-init", "secretsd-agent"
VOLUME, PODINFO, TOKEN = "secretsd", "secretsd-podinfo", "secretsd-token"
MOUNT, PODINFO_MOUNT, TOKEN_MOUNT = "/secretsd", "/etc/podinfo", "/var/run/secrets/secretsd"


@dataclass(frozen=True, slots=True)
class InjectorSettings:
    image: str
    addr: str
    #: CA bundle the agent trusts for secretsd (mounted from this ConfigMap, if set).
    ca_configmap: str | None = None
    token_ttl: int = 3600
    run_as_user: int = 65532
    cpu_request: str = "10m"
    memory_request: str = "32Mi"
    memory_limit: str = "64Mi"


def _escape(key: str) -> str:
    """A JSON Pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _agent_container(
    name: str, mode: str, settings: InjectorSettings, run_as: int | None
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "SECRETSD_ADDR", "value": settings.addr},
        {"name": "SECRETSD_K8S_TOKEN_FILE", "value": f"{TOKEN_MOUNT}/token"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": VOLUME, "mountPath": MOUNT},
        {"name": PODINFO, "mountPath": PODINFO_MOUNT, "readOnly": True},
        {"name": TOKEN, "mountPath": TOKEN_MOUNT, "readOnly": True},
    ]
    if settings.ca_configmap:
        env.append({"name": "SECRETSD_CACERT", "value": "/etc/secretsd-ca/ca.crt"})
        mounts.append({"name": "secretsd-ca", "mountPath": "/etc/secretsd-ca", "readOnly": True})
    return {
        "name": name,
        "image": settings.image,
        "args": ["agent", mode, "--annotations", f"{PODINFO_MOUNT}/annotations", "--dir", MOUNT],
        "env": env,
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"memory": settings.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": run_as if run_as is not None else settings.run_as_user,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _volumes(settings: InjectorSettings) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {
            "name": PODINFO,
            "downwardAPI": {
                "items": [
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
                ]
            },
        },
        {
            "name": TOKEN,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "secretsd",
                            "expirationSeconds": settings.token_ttl,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]
    if settings.ca_configmap:
        volumes.append({"name": "secretsd-ca", "configMap": {"name": settings.ca_configmap}})
    return volumes


def _add_all(patch: list[dict[str, Any]], path: str, existing: Any, items: list[Any], *,
             first: bool = False) -> None:  # fmt: skip
    """Append (or prepend) ``items`` to the list at ``path``, creating it if absent."""
    if not existing:
        patch.append({"op": "add", "path": path, "value": items})
        return
    for index, item in enumerate(items):
        patch.append({"op": "add", "path": f"{path}/{index if first else '-'}", "value": item})


def _run_as(spec: Mapping[str, Any]) -> int | None:
    """The app's user, so files of mode 0400 stay readable by it."""
    for container in spec.get("containers") or ():
        user = (container.get("securityContext") or {}).get("runAsUser")
        if isinstance(user, int) and user > 0:
            return user
    user = (spec.get("securityContext") or {}).get("runAsUser")
    return user if isinstance(user, int) and user > 0 else None


def mutate(pod: Mapping[str, Any], settings: InjectorSettings) -> list[dict[str, Any]]:
    """The JSONPatch for ``pod`` (empty when nothing to do); ConfigError when refused."""
    metadata = pod.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    if str(annotations.get(INJECT, "")).lower() != "true":
        return []
    spec = pod.get("spec") or {}
    names = {c.get("name") for c in (spec.get("initContainers") or [])}
    if annotations.get(STATUS) == "injected" or INIT_NAME in names:
        return []
    config = from_annotations(annotations, "pod annotations")
    if not config.role:
        raise ConfigError(
            "pod annotations: secretsd.io/role is missing; name the Kubernetes login role"
        )
    if not config.outputs:
        raise ConfigError(
            "pod annotations: secretsd.io/inject is true but no secretsd.io/secret-<file> or "
            "template-<file> annotation says what to render"
        )
    taken = {v.get("name") for v in spec.get("volumes") or ()}
    clash = sorted(taken & {VOLUME, PODINFO, TOKEN, "secretsd-ca"})
    if clash:
        raise ConfigError(f"pod spec: volume name(s) {', '.join(clash)} are reserved for secretsd")
    run_as = _run_as(spec)
    patch: list[dict[str, Any]] = []
    _add_all(patch, "/spec/volumes", spec.get("volumes"), _volumes(settings))
    _add_all(
        patch,
        "/spec/initContainers",
        spec.get("initContainers"),
        [_agent_container(INIT_NAME, "init", settings, run_as)],
        first=True,
    )
    for index, container in enumerate(spec.get("containers") or ()):
        mounts = container.get("volumeMounts") or []
        if any(m.get("mountPath") == MOUNT for m in mounts):
            continue
        _add_all(
            patch,
            f"/spec/containers/{index}/volumeMounts",
            mounts,
            [{"name": VOLUME, "mountPath": MOUNT, "readOnly": True}],
        )
    if not config.init_only:
        patch.append(
            {
                "op": "add",
                "path": "/spec/containers/-",
                "value": _agent_container(SIDECAR_NAME, "sidecar", settings, run_as),
            }
        )
        if config.on_change is not None and config.on_change.kind == "signal":
            patch.append({"op": "add", "path": "/spec/shareProcessNamespace", "value": True})
    if not metadata.get("annotations"):
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    patch.append(
        {"op": "add", "path": f"/metadata/annotations/{_escape(STATUS)}", "value": "injected"}
    )
    return patch
