"""SIGKILL at several points of an apply, then a rerun: the end state equals an
uninterrupted run's. And the one window between a data write and its provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from secretsd.migrations.apply import Journal, apply_plan, provenance
from secretsd.migrations.kube import KubeImporter, KubeManifests
from secretsd.migrations.mapping import Mapper
from secretsd.migrations.plan import build_plan
from secretsd.migrations.sources import k8s_files_source

from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer, secretsd_executable
from tests.migrate.conftest import read_back, secret_paths

SECRETS = 60


def _manifests(root: Path) -> Path:
    import base64

    root.mkdir()
    docs = []
    for n in range(SECRETS):
        values = {f"key{k}": f"value-{n:03d}-{k}-Zq8w" for k in range(3)}
        for value in values.values():
            CANARY.remember(value)
        data = "".join(
            f"  {k}: {base64.b64encode(v.encode()).decode()}\n" for k, v in values.items()
        )
        docs.append(
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{n:03d}\n  namespace: crash\ndata:\n{data}"
        )
    (root / "all.yaml").write_text("---\n".join(docs))
    return root


def _state(admin: httpx.Client, prefix: str) -> dict[str, Any]:
    """Every secret below ``prefix``: data, version count and migrate provenance (plan id aside)."""
    state = {}
    for path in secret_paths(admin, prefix):
        data, meta = read_back(admin, path)
        custom = {
            k: v
            for k, v in meta["custom_metadata"].items()
            if k.startswith("secretsd-migrate-") and k != "secretsd-migrate-plan"
        }
        state[path.removeprefix(prefix + "/")] = (data, meta["current_version"], custom)
    return state


def _env(server: RunningServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=ADMIN_TOKEN,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    return env


def _apply(
    server: RunningServer, tmp_path: Path, root: Path, prefix: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            secretsd_executable(),
            "migrate",
            "apply",
            "k8s",
            str(root),
            "--prefix",
            prefix,
            "--concurrency",
            "1",
            "--batch-size",
            "4",  # so a kill can land between batches, not only before or after all
            "--json",
        ],
        env=_env(server, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    root = _manifests(tmp_path / "k8s")
    reference = _apply(server, tmp_path, root, "ref")
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err.decode()
    expected = _state(admin, "ref")
    assert len(expected) == SECRETS

    kill_points = [0, 1, SECRETS // 3, (2 * SECRETS) // 3]
    for index, after in enumerate(kill_points):
        prefix = f"run{index}"
        process = _apply(server, tmp_path, root, prefix)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if after == 0 or len(secret_paths(admin, prefix)) >= after:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        written_before = len(secret_paths(admin, prefix))
        assert written_before < SECRETS or after == 0, "killed too late to test anything"
        rerun = _apply(server, tmp_path, root, prefix)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()
        report = json.loads(out)
        assert written_before + len(report["written"]) == SECRETS
        assert _state(admin, prefix) == expected, f"kill after {after} writes"
        # and once more: nothing left to do
        again = _apply(server, tmp_path, root, prefix)
        out, _ = again.communicate(timeout=120)
        assert json.loads(out)["written"] == []


def test_kill_between_data_and_provenance_is_repaired(
    server: RunningServer, admin: httpx.Client, tmp_path: Path
) -> None:
    from secretsd import Client

    root = _manifests(tmp_path / "k8s")
    source = k8s_files_source(root)
    journal = Journal(tmp_path / "journal")
    with Client(server.url, ADMIN_TOKEN) as client:
        items = list(KubeImporter().read(KubeManifests(root)))
        plan = build_plan(items, Mapper(), client, source=source, mapping={})
        # Exactly what a SIGKILL right after the data write leaves behind:
        path = "k8s/crash/s007"
        journal.begin([path])
        client.put(path, {i.key: i.value for i in plan.items if i.path == path}, cas=0)
        assert "secretsd-migrate-plan" not in client.metadata(path).custom_metadata

        rerun = build_plan(items, Mapper(), client, source=source, mapping={})
        assert rerun.plan_id == plan.plan_id  # same sources, same id, same provenance
        assert {i.action for i in rerun.items if i.path == path} == {"unchanged"}
        report = apply_plan(rerun, client, journal=journal)
        assert report.repaired == [path]
        assert path not in report.written and len(report.written) == SECRETS - 1
        expected = provenance(plan.plan_id, [i for i in rerun.items if i.path == path])
        custom = client.metadata(path).custom_metadata
        assert {k: custom[k] for k in expected} == expected
        assert not journal.path.exists()  # a finished run clears its journal
