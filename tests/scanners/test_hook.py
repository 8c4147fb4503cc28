"""The hook blocks a real `git commit`: through the pre-commit framework and --install-hook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import commit_file, git
from synth import github_token, password

from secretsd.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
PW = password(seed=41)
TOKEN = github_token(seed=42)
HOOK_BIN = Path(sys.executable).parent / "secretsd-scan-hook"


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _commit(repo: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-m", message], cwd=repo, env=env, capture_output=True, text=True
    )


def test_hooks_file_declares_the_hook() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "secretsd-scan"
    assert hook["entry"] == "secretsd-scan-hook"
    assert hook["pass_filenames"] is False
    assert hook["language"] == "python"


def test_pre_commit_framework_blocks_a_real_commit(repo: Path, tmp_path: Path) -> None:
    """Runs the real pre-commit framework with our hook definition (local, offline)."""
    (declared,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    local = {k: v for k, v in declared.items() if k not in ("additional_dependencies",)}
    local.update(language="system", entry=str(HOOK_BIN))  # no network: use this environment
    config = {"repos": [{"repo": "local", "hooks": [local]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    env = _env(tmp_path)
    commit_file(
        repo, ".pre-commit-config.yaml", (repo / ".pre-commit-config.yaml").read_text(), "cfg"
    )
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    (repo / "deploy.sh").write_text(f"#!/bin/sh\nexport GH_TOKEN={TOKEN}\n")
    (repo / "settings.py").write_text(f'DB_PASSWORD = "{PW}"\n')
    git(repo, "add", "deploy.sh", "settings.py")
    blocked = _commit(repo, env, "add deploy")
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0
    assert "commit blocked" in output
    assert "deploy.sh:2:" in output
    assert "settings.py:1:" in output
    assert "secretsd://" in output
    assert TOKEN not in output
    assert PW not in output
    assert git(repo, "log", "--format=%s").splitlines() == ["cfg"]
    # Fix it the recommended way: a reference instead of the literal.
    (repo / "settings.py").write_text('DB_PASSWORD = "secretsd://apps/web/db#password"\n')
    (repo / "deploy.sh").write_text("#!/bin/sh\nexport GH_TOKEN=$(secretsd get ci/github#token)\n")
    git(repo, "add", "deploy.sh", "settings.py")
    passed = _commit(repo, env, "add deploy")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "add deploy"


def test_install_hook_without_the_framework(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_file(repo, "README.md", "hi\n", "init")
    assert main(["scan", str(repo), "--install-hook"]) == 0
    assert "Installed" in capsys.readouterr().out
    assert main(["scan", str(repo), "--install-hook"]) == 0  # idempotent
    capsys.readouterr()
    (repo / "app.env").write_text(f"DB_PASSWORD={PW}\n")
    git(repo, "add", "app.env")
    blocked = _commit(repo, _env(tmp_path), "secret")
    assert blocked.returncode != 0
    assert "app.env:1:" in blocked.stderr
    assert PW not in blocked.stderr
    (repo / "app.env").write_text("DB_PASSWORD=${DB_PASSWORD}\n")
    git(repo, "add", "app.env")
    assert _commit(repo, _env(tmp_path), "ref").returncode == 0


def test_install_hook_refuses_to_clobber(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\nexit 0\n")
    assert main(["scan", str(repo), "--install-hook"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"


def test_hook_outside_a_repo_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from secretsd.scanners import hook

    monkeypatch.chdir(tmp_path)
    assert hook.main([]) == 2
    assert "not inside a git repository" in capsys.readouterr().err
