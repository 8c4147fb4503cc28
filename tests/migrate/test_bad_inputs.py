"""Every bad input of the fixture set is refused with a specific error and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.migrate.conftest import BAD, FIXTURES, expected_bytes, read_back, secret_paths

CASES = {case["id"]: case for case in BAD["cases"]}


def _flags(case: dict[str, Any]) -> list[str]:
    return [
        f"--vault-id={vid['id']}@{FIXTURES / vid['password_file']}"
        for vid in case["vault_ids"] or []
    ]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_bad_input_refused_without_a_write(
    case_id: str, migrate: Any, admin: httpx.Client, tmp_path: Path
) -> None:
    case = CASES[case_id]
    kind = "ansible" if case_id.startswith("ansible") else "k8s"
    root = tmp_path / "src"
    shutil.copytree(FIXTURES / case["root"], root)
    if kind == "ansible":
        (root / "ansible.cfg").write_text("[defaults]\n")  # only the flags' passwords
    result = migrate("apply", kind, str(root), *_flags(case), check=2)
    message = result.stderr.decode()
    assert message.startswith("Error: ") and "Traceback" not in message
    assert f"[{case['expect_error']}]" in message
    bad_files = {w["file"] for w in case["would_be_items"] if "file" in w}
    assert any(f in message for f in bad_files) or kind == "k8s"
    if kind == "k8s":
        assert any(w["name"] in message for w in case["would_be_items"])
    assert secret_paths(admin) == [], "a bad run must write nothing, not even its good items"
    # The plan shows the same error as JSON, still without a value, and exits 2.
    planned = json.loads(migrate("plan", kind, str(root), *_flags(case), check=2).stdout)
    assert case["expect_error"] in {e["code"] for e in planned["errors"]}


def test_skip_errors_writes_the_good_items_and_reports_the_bad(
    migrate: Any, admin: httpx.Client
) -> None:
    case = CASES["ansible-mixed-run"]
    root = FIXTURES / case["root"]
    result = json.loads(
        migrate("apply", "ansible", str(root), *_flags(case), "--skip-errors").stdout
    )
    assert [s["code"] for s in result["skipped"]] == ["vault_no_matching_secret"]
    good = next(w for w in case["would_be_items"] if w["vault"]["vault_id"] == "dev")
    data, _ = read_back(admin, "ansible/mixed_ok/vault_ok")
    assert data["value"] == expected_bytes(good["value"])
    assert secret_paths(admin) == ["ansible/mixed_ok/vault_ok"]


def test_wrong_password_and_missing_password_are_told_apart(migrate: Any, tmp_path: Path) -> None:
    root = FIXTURES / "ansible"
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    tree = tmp_path / "tree"
    shutil.copytree(root / "roles", tree / "roles")  # a 1.1 file (no label) and 1.2 "prod"/"dev"
    out = migrate("plan", "ansible", str(tree), f"--vault-id=dev@{wrong}", check=2)
    codes = {e["code"] for e in json.loads(out.stdout)["errors"]}
    assert codes == {"vault_decrypt_failed", "vault_no_matching_secret"}


def test_no_password_source_is_a_clear_config_error(migrate: Any, tmp_path: Path) -> None:
    result = migrate("plan", "ansible", str(tmp_path), "--vault-id=dev@/nonexistent/pw", check=2)
    assert b"vault password file /nonexistent/pw (vault-id 'dev') does not exist" in result.stderr
