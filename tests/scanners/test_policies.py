"""Managing findings: baseline, allowlists, inline ignore, test paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth import password

from secretsd.cli.main import main

PW1 = password(seed=31)
PW2 = password(seed=32)


def scan(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, object]], str]:
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    findings = json.loads(out)["findings"] if "--format" in argv and out else []
    return code, findings, err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    (root / "tests").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "app.env").write_text(f"DB_PASSWORD={PW1}\n")
    (root / "tests" / "test_login.py").write_text(f'login("bob", password="{PW2}")\n')
    (root / "docs" / "setup.md").write_text(f"DB_PASSWORD={PW2}\n")
    return root


def test_baseline_accepts_today_and_fails_on_new(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tree / ".secretsd-baseline.json"
    code, _, err = scan(capsys, str(tree), "--write-baseline", str(baseline))
    assert code == 0
    assert "Wrote 3 finding(s)" in err
    text = baseline.read_text()
    assert PW1 not in text
    assert PW2 not in text
    assert len(json.loads(text)["findings"]) == 3
    code, findings, _ = scan(capsys, str(tree), "--baseline", str(baseline), "--format", "json")
    assert code == 0
    assert findings == []
    # Edits above a baselined secret do not make it new; a new secret is.
    (tree / "app.env").write_text(f"# header\n\nDB_PASSWORD={PW1}\nAPI_PASSWORD=Q{PW2}\n")
    code, findings, _ = scan(capsys, str(tree), "--baseline", str(baseline), "--format", "json")
    assert code == 1
    assert [(f["path"], f["line"]) for f in findings] == [("app.env", 4)]


def test_bad_baseline_is_exit_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "b.json").write_text("{not json")
    code, _, err = scan(capsys, str(tree), "--baseline", str(tree / "b.json"))
    assert code == 2
    assert "not a readable JSON" in err
    code, _, err = scan(capsys, str(tree), "--baseline", str(tree / "missing.json"))
    assert code == 2
    assert "--write-baseline" in err


def test_path_and_value_allowlists(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / ".secretsd-scan.toml").write_text(
        f'[allowlist]\npaths = ["docs/**"]\nvalues = ["^{PW1[:6]}"]\n'
    )
    code, findings, _ = scan(capsys, str(tree), "--format", "json")
    assert code == 1
    assert [f["path"] for f in findings] == ["tests/test_login.py"]


def test_fingerprint_allowlist(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, findings, _ = scan(capsys, str(tree), "--format", "json")
    accepted = [f["fingerprint"] for f in findings if f["path"] != "app.env"]
    (tree / ".secretsd-scan.toml").write_text(
        f"[allowlist]\nfingerprints = {json.dumps(accepted)}\n"
    )
    _, findings, _ = scan(capsys, str(tree), "--format", "json")
    assert [f["path"] for f in findings] == ["app.env"]


def test_inline_ignore_comment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.py").write_text(
        f'DB_PASSWORD = "{PW1}"  # secretsd:ignore\nOTHER_PASSWORD = "{PW2}"\n'
    )
    _, findings, _ = scan(capsys, str(tmp_path), "--format", "json")
    assert [f["line"] for f in findings] == [2]


def test_test_paths_reported_by_default_and_optional(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, findings, _ = scan(capsys, str(tree), "--format", "json")
    tests = [f for f in findings if f["path"] == "tests/test_login.py"]
    assert len(tests) == 1
    assert tests[0]["test_path"] is True
    _, findings, _ = scan(capsys, str(tree), "--format", "json", "--no-tests")
    assert "tests/test_login.py" not in [f["path"] for f in findings]
    (tree / ".secretsd-scan.toml").write_text("[scan]\nreport_test_paths = false\n")
    _, findings, _ = scan(capsys, str(tree), "--format", "json")
    assert "tests/test_login.py" not in [f["path"] for f in findings]
    _, findings, _ = scan(capsys, str(tree), "--format", "json", "--tests")
    assert "tests/test_login.py" in [f["path"] for f in findings]


def test_rule_override_from_config(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / ".secretsd-scan.toml").write_text(
        '[scan]\ndisabled_rules = ["generic-password"]\n'
        '[[rules]]\nid = "config-password"\nenabled = false\n'
    )
    code, findings, _ = scan(capsys, str(tree), "--format", "json")
    assert code == 0
    assert findings == []
