from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from secretsd.scanners.config import ScanConfig
from secretsd.scanners.engine import Engine
from secretsd.scanners.rules import RuleSet, load_default_rules


@pytest.fixture(scope="session", autouse=True)
def _scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled rule databases go to a per-session directory, never the user's cache."""
    old = os.environ.get("SECRETSD_SCAN_CACHE")
    os.environ["SECRETSD_SCAN_CACHE"] = str(tmp_path_factory.mktemp("scan-cache"))
    yield
    if old is None:
        os.environ.pop("SECRETSD_SCAN_CACHE", None)
    else:
        os.environ["SECRETSD_SCAN_CACHE"] = old


@pytest.fixture(scope="session")
def engine(_scan_cache: None) -> Engine:
    return Engine(RuleSet(tuple(load_default_rules())))


@pytest.fixture(scope="session")
def default_config(_scan_cache: None) -> ScanConfig:
    return ScanConfig.load(Path("/nonexistent-root"))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real, empty git repository with an identity configured."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Dev One")
    git(path, "config", "user.email", "dev1@example.test")
    git(path, "config", "commit.gpgsign", "false")
    return path


def commit_file(repo: Path, rel: str, text: str, message: str) -> str:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()
