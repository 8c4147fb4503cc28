"""Staged changes, commit ranges and whole histories, in real temporary repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import commit_file, git
from synth import github_token, password

from secretsd.cli.main import main

PW1 = password(seed=21)
PW2 = password(seed=22)
TOKEN = github_token(seed=23)


def scan_json(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, object]]]:
    code = main(["scan", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    for secret in (PW1, PW2, TOKEN):
        assert secret not in out
    return code, json.loads(out)["findings"]


def test_staged_only_counts_what_commit_would_record(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_file(repo, "README.md", "hello\n", "init")
    (repo / "app.py").write_text(f'print(1)\nDB_PASSWORD = "{PW1}"\n')
    git(repo, "add", "app.py")
    # After staging, the working copy drops the secret and adds another, unstaged one.
    (repo / "app.py").write_text(f'print(1)\nOTHER_PASSWORD = "{PW2}"\n')
    (repo / "untracked.env").write_text(f"DB_PASSWORD={PW2}\n")
    code, findings = scan_json(capsys, str(repo), "--staged")
    assert code == 1
    assert [(f["path"], f["line"], f["commit"]) for f in findings] == [("app.py", 2, None)]


def test_staged_clean_and_initial_commit(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    code, findings = scan_json(capsys, str(repo), "--staged")
    assert code == 0
    assert findings == []


def test_history_finds_a_secret_added_then_deleted(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_file(repo, "README.md", "hello\n", "init")
    added = commit_file(repo, "config/app.yaml", f"db:\n  user: app\n  password: {PW1}\n", "add db")
    for i in range(3):  # later commits carry the secret along
        commit_file(repo, "README.md", f"hello {i}\n", f"edit {i}")
    commit_file(repo, "config/app.yaml", "db:\n  user: app\n  password: ${DB_PASSWORD}\n", "fix")
    code, findings = scan_json(capsys, str(repo))
    assert code == 0  # the working tree is clean now
    code, findings = scan_json(capsys, str(repo), "--history")
    assert code == 1
    assert len(findings) == 1  # once per secret and location
    (finding,) = findings
    assert finding["path"] == "config/app.yaml"
    assert finding["line"] == 3
    assert finding["commit"] == added
    assert finding["author"] == "Dev One"
    assert finding["email"] == "dev1@example.test"
    assert str(finding["date"]).startswith("20")


def test_history_covers_all_branches_and_reports_each_location_once(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_file(repo, "README.md", "hello\n", "init")
    git(repo, "checkout", "-q", "-b", "feature")
    on_branch = commit_file(repo, "ci/deploy.sh", f"export GH_TOKEN={TOKEN}\n", "ci")
    commit_file(repo, "ci/deploy.sh", f"# deploy\nexport GH_TOKEN={TOKEN}\n", "move down")
    commit_file(repo, "other.sh", f"export GH_TOKEN={TOKEN}\n", "copy")
    git(repo, "checkout", "-q", "main")
    _, findings = scan_json(capsys, str(repo), "--history")
    located = sorted((f["path"], f["commit"]) for f in findings)
    assert located[0] == ("ci/deploy.sh", on_branch)
    assert [path for path, _ in located] == ["ci/deploy.sh", "other.sh"]


def test_since_scans_only_the_range(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = commit_file(repo, "old.env", f"DB_PASSWORD={PW1}\n", "old secret")
    new = commit_file(repo, "new.env", f"API_PASSWORD={PW2}\n", "new secret")
    code, findings = scan_json(capsys, str(repo), "--since", base)
    assert code == 1
    assert [(f["path"], f["commit"]) for f in findings] == [("new.env", new)]
    code, findings = scan_json(capsys, str(repo), "--since", "HEAD")
    assert code == 0


def test_history_of_an_empty_repo_is_clean(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = scan_json(capsys, str(repo), "--history")
    assert code == 0
    assert findings == []


def test_odd_paths_in_history(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_file(repo, "dir with space/ünïcode file.env", f"DB_PASSWORD={PW1}\n", "odd")
    _, findings = scan_json(capsys, str(repo), "--history")
    assert [f["path"] for f in findings] == ["dir with space/ünïcode file.env"]


def test_parallel_history_matches_a_single_git_log(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long histories are split over several `git log` processes: same findings, same commits."""
    import secretsd.scanners.sources.git as git_source

    commit_file(repo, "README.md", "hello\n", "init")
    added = commit_file(repo, "config/app.yaml", f"db:\n  password: {PW1}\n", "add db")
    for i in range(6):
        commit_file(repo, "README.md", f"hello {i}\n", f"edit {i}")
    commit_file(repo, "config/app.yaml", "db:\n  password: ${DB_PASSWORD}\n", "fix")
    git(repo, "checkout", "-q", "-b", "feature")
    on_branch = commit_file(repo, "ci/deploy.sh", f"export GH_TOKEN={TOKEN}\n", "ci")
    for i in range(4):
        commit_file(repo, "ci/notes.txt", f"note {i}\n", f"note {i}")
    git(repo, "checkout", "-q", "main")

    monkeypatch.setattr(git_source, "_PARALLEL_MIN_COMMITS", 10**9)
    _, single = scan_json(capsys, str(repo), "--history")
    monkeypatch.setattr(git_source, "_PARALLEL_MIN_COMMITS", 2)
    monkeypatch.setattr(git_source, "_workers", lambda: 3)
    source = git_source.DiffSource(git_source.open_repo(repo), "history")
    source.start()
    assert len(source._readers) == 3  # really split
    list(source.fragments())
    _, parallel = scan_json(capsys, str(repo), "--history")

    def located(findings: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return sorted((f["rule"], f["path"], f["line"], f["commit"]) for f in findings)

    assert located(parallel) == located(single)
    assert {(f["path"], f["commit"]) for f in parallel} == {
        ("config/app.yaml", added),
        ("ci/deploy.sh", on_branch),
    }
