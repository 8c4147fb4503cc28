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
