"""`secretsd scan` end to end: exit codes, report formats, redaction, bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from conftest import commit_file, git
from synth import github_token, password

from secretsd.cli.main import main

PW = password(seed=11)
TOKEN = github_token(seed=12)
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "db.py").write_text(f'import os\n\nDB_PASSWORD = "{PW}"\n')
    (root / "src" / "gh.yaml").write_text(f"token: {TOKEN}\n")
    (root / "src" / "clean.py").write_text("password = os.environ['PW']\n")
    return root


def test_clean_tree_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.py").write_text("print('hello')\n")
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0
    assert "No secrets found" in out


def test_findings_exit_1_and_are_redacted(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tree))
    assert code == 1
    assert "src/db.py:3:" in out
    assert "src/gh.yaml:1:" in out
    assert PW not in out
    assert TOKEN not in out
    assert "secretsd://" in out  # says how to fix


def test_show_secrets_prints_them(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tree), "--format", "json", "--show-secrets")
    assert code == 1
    secrets = {f["secret"] for f in json.loads(out)["findings"]}
    assert secrets == {PW, TOKEN}


def test_json_shape(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tree), "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert set(document) == {"findings", "stats"}
    assert PW not in out
    assert TOKEN not in out
    by_path = {f["path"]: f for f in document["findings"]}
    assert set(by_path) == {"src/db.py", "src/gh.yaml"}
    first = by_path["src/db.py"]
    assert first["line"] == 3
    assert first["commit"] is None
    assert first["rule"] == "generic-password"
    assert len(first["fingerprint"]) == 32
    assert document["stats"]["files"] == 3
    _, out2, _ = run(capsys, str(tree), "--format", "json")
    assert [f["fingerprint"] for f in json.loads(out2)["findings"]] == [
        f["fingerprint"] for f in document["findings"]
    ]


def test_sarif_validates_against_the_schema(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tree), "--format", "sarif")
    assert code == 1
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    results = document["runs"][0]["results"]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "src/db.py",
        "src/gh.yaml",
    }
    assert PW not in out
    assert TOKEN not in out


def test_empty_sarif_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tmp_path), "-f", "sarif")
    assert code == 0
    jsonschema.validate(json.loads(out), SCHEMA)


def test_output_file(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code, out, _ = run(capsys, str(tree), "-f", "json", "-o", str(report))
    assert code == 1
    assert out == ""
    assert len(json.loads(report.read_text())["findings"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "xml"], "--format 'xml' is not known"),
        (["--staged", "--history"], "cannot be combined"),
        (["--max-file-size", "0"], "--max-file-size"),
        (["--dry-run"], "only apply to --fix"),
        (["--config", "/nonexistent/scan.toml"], "cannot read scan config"),
    ],
)
def test_user_mistakes_exit_2(
    tree: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, str(tree), *argv)
    assert code == 2
    assert err.startswith("Error: ")
    assert message in err
    assert "Traceback" not in err


def test_missing_path_and_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "/nonexistent/dir")[0] == 2
    assert run(capsys, ".", "--no-such-flag")[0] == 2


def test_not_a_repo_and_bad_rev(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, str(tmp_path / "repo" / ".."), "--staged")
    assert code == 2
    assert "not inside a git repository" in err
    commit_file(repo, "a.txt", "hello\n", "first")
    code, _, err = run(capsys, str(repo), "--since", "no-such-branch")
    assert code == 2
    assert "no such commit" in err


def test_bad_inputs_do_not_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "blob.bin").write_bytes(b"\x00\x01" * 1000 + f'password = "{PW}"'.encode())
    (root / "huge.txt").write_bytes(b"x" * 3_000_000 + f'\npassword = "{PW}"\n'.encode())
    (root / "latin1.py").write_bytes(b"# caf\xe9\n" + f'password = "{PW}"\n'.encode())
    (root / "loop").mkdir()
    os.symlink(root / "loop", root / "loop" / "again")
    os.symlink(root / "nowhere", root / "dangling")
    unreadable = root / "secret.key"
    unreadable.write_text("x")
    code, out, _ = run(capsys, str(root), "-f", "json", "--max-file-size", "1000000")
    assert code == 1
    document = json.loads(out)
    assert [f["path"] for f in document["findings"]] == ["latin1.py"]
    skipped = document["stats"]["skipped"]
    assert skipped["binary"] == 1
    assert skipped["too_large"] == 1
    assert skipped["symlinks"] >= 1


def test_broken_repo_is_an_error_not_a_crash(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_file(repo, "a.txt", "hello\n", "first")
    objects = repo / ".git" / "objects"
    for folder in objects.iterdir():
        if len(folder.name) == 2:
            for obj in folder.iterdir():
                obj.chmod(0o644)
                obj.write_bytes(b"corrupt")
    code, _, err = run(capsys, str(repo), "--history")
    assert code == 2
    assert err.startswith("Error: ")
    assert "Traceback" not in err


def test_list_rules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, str(tmp_path), "--list-rules")
    assert code == 0
    assert "github-token" in out
    assert "generic-password" in out


def test_git_work_tree_respects_gitignore(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / ".gitignore").write_text("ignored/\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "app.env").write_text(f"DB_PASSWORD={PW}\n")
    (repo / "kept.env").write_text(f"DB_PASSWORD={PW}\n")
    git(repo, "add", ".gitignore")
    code, out, _ = run(capsys, str(repo), "-f", "json")
    assert code == 1
    assert [f["path"] for f in json.loads(out)["findings"]] == ["kept.env"]


def test_fast_parser_accepts_every_typer_option() -> None:
    """`secretsd scan` is parsed by argparse for speed; it must know every option typer shows."""
    import typer.main

    from secretsd.cli import scan_cmd
    from secretsd.cli.main import app

    command = typer.main.get_command(app).commands["scan"]  # type: ignore[attr-defined]
    typer_flags = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    typer_flags = {f for f in typer_flags if f.startswith("-")} - {"--help"}
    parser = scan_cmd.fast_parser()  # re-exported from scan_run
    fast_flags = {opt for action in parser._actions for opt in action.option_strings}
    assert typer_flags == fast_flags
    typer_dests = {param.name for param in command.params}
    fast_dests = {action.dest for action in parser._actions}
    assert typer_dests == fast_dests


def test_console_entry_point_fast_path(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`secretsd scan` through the console script never needs typer, and keeps the boundary."""
    from secretsd.cli.entry import main as entry

    assert entry(["scan", str(tree), "-f", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"]
    assert entry(["scan", str(tree), "--format", "xml"]) == 2
    assert capsys.readouterr().err.startswith("Error: --format 'xml'")
    assert entry(["scan", "--no-such-flag"]) == 2
    assert entry(["version"]) == 0


def test_scan_start_up_loads_no_server_or_cli_framework(repo: Path) -> None:
    """`secretsd scan` runs in every pre-commit hook and CI job: its start-up is its wall time
    on small inputs, so it loads no pydantic, typer or httpx (pydantic alone was a third)."""
    import subprocess
    import sys

    commit_file(repo, "app.env", f"DB_PASSWORD={PW}\n", "add")
    code = (
        "import sys; from secretsd.cli.entry import main; "
        f"rc = main(['scan', {str(repo)!r}, '--history', '--format', 'json', '-o', '/dev/null']); "
        "heavy = [m for m in ('pydantic', 'typer', 'httpx', 'rich', 'fastapi') "
        "if m in sys.modules]; print(rc, ','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1"]
