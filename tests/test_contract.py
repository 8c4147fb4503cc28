"""Contracts between the README, CI and the code."""

from __future__ import annotations

import re
from pathlib import Path

from secretsd.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    python3 -m venv")]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    serve, test = commands
    assert serve.endswith("secretsd serve")
    assert "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    assert documented == set(Settings.model_fields)


def test_deploy_files_use_real_settings_and_endpoints() -> None:
    import yaml

    documents = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/secretsd.yaml").read_text()))
    kinds = {doc["kind"] for doc in documents}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    config = next(doc for doc in documents if doc["kind"] == "ConfigMap")["data"]
    fields = set(Settings.model_fields)
    for name in config:
        assert name.startswith("SECRETSD_") and name[len("SECRETSD_") :].lower() in fields, name
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == int(config["SECRETSD_PORT"])
    unit = (ROOT / "deploy/systemd/secretsd.service").read_text()
    assert "secretsd serve" in unit
    for line in unit.splitlines():
        if line.startswith("Environment=SECRETSD_"):
            assert line.split("=", 2)[1][len("SECRETSD_") :].lower() in fields
