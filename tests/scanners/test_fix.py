"""`--fix`: planning and rewriting offline; the HTTP store against a mocked server contract."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from secretsd.scanners.config import ScanConfig
from secretsd.scanners.fix import env_name, plan_fixes, render_diff, run_fix, sdk_store
from secretsd.scanners.scan import ScanRequest, run_scan
from synth import github_token, password

from secretsd.cli.main import main

PW = password(seed=51)
PW2 = password(seed=52)
TOKEN = github_token(seed=53)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "app").mkdir(parents=True)
    (root / "app" / "settings.py").write_text(
        f'"""Settings."""\nfrom __future__ import annotations\n\nDB_PASSWORD = "{PW}"\n'
    )
    (root / "app" / "client.js").write_text(f"const apiToken = '{TOKEN}';\n")
    (root / "deploy.sh").write_text(f"#!/bin/sh\nexport ADMIN_PASSWORD={PW2}\n")
    (root / "config.json").write_text(f'{{"db": {{"password": "{PW2}"}}}}\n')
    return root


def findings_of(root: Path):
    return run_scan(ScanRequest(target=root, config=ScanConfig.load(root))).findings


def test_env_name() -> None:
    assert env_name("dbPassword") == "DB_PASSWORD"
    assert env_name("db.password") == "DB_PASSWORD"
    assert env_name("9lives") == "_9LIVES"


def test_plan_rewrites_per_language(project: Path) -> None:
    plan = plan_fixes(project, findings_of(project))
    assert not plan.skipped
    text = plan.new_text
    assert 'DB_PASSWORD = os.environ["DB_PASSWORD"]' in text["app/settings.py"]
    assert text["app/settings.py"].startswith(
        '"""Settings."""\nfrom __future__ import annotations\nimport os\n'
    )
    assert text["app/client.js"] == "const apiToken = process.env.API_TOKEN;\n"
    assert text["deploy.sh"].endswith("export ADMIN_PASSWORD=${ADMIN_PASSWORD}\n")
    assert text["config.json"] == (
        '{"db": {"password": "secretsd://scanned/shop/config#password"}}\n'
    )
    stores = plan.stores()
    assert stores["scanned/shop/settings"] == {"db_password": PW}
    assert stores["scanned/shop/client"] == {"api_token": TOKEN}
    for rel, new in text.items():
        for secret in (PW, PW2, TOKEN):
            assert secret not in new, rel


def test_same_key_different_values_get_distinct_keys(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "app.env").write_text(f"DB_PASSWORD={PW}\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "app.env").write_text(f"DB_PASSWORD={PW2}\n")
    stores = plan_fixes(tmp_path, findings_of(tmp_path), "r").stores()
    assert stores == {"scanned/r/app": {"db_password": PW, "db_password_2": PW2}}


def test_dry_run_shows_a_redacted_diff_and_changes_nothing(project: Path) -> None:
    before = {p: p.read_text() for p in project.rglob("*") if p.is_file()}
    out: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    def refuse(path: str, data: Mapping[str, str]) -> None:
        raise AssertionError("a dry run must not store anything")

    code = run_fix(
        project, findings_of(project), dry_run=True, assume_yes=False, store=refuse, out=Stream()
    )
    assert code == 0
    printed = "".join(out)
    assert '+DB_PASSWORD = os.environ["DB_PASSWORD"]' in printed
    assert "DB_PASSWORD=secretsd://scanned/shop/settings#db_password" in printed
    for secret in (PW, PW2, TOKEN):
        assert secret not in printed
    assert before == {p: p.read_text() for p in project.rglob("*") if p.is_file()}
    assert PW not in render_diff(plan_fixes(project, findings_of(project)))


def test_confirmation_declined_changes_nothing(project: Path) -> None:
    stored: list[str] = []
    code = run_fix(
        project,
        findings_of(project),
        dry_run=False,
        assume_yes=False,
        store=lambda p, d: stored.append(p),
        confirm=lambda q: False,
        out=_Null(),
    )
    assert code == 1
    assert stored == []
    assert PW in (project / "app" / "settings.py").read_text()


def test_apply_stores_first_then_rewrites(project: Path) -> None:
    stored: dict[str, dict[str, str]] = {}

    def store(path: str, data: Mapping[str, str]) -> None:
        stored.setdefault(path, {}).update(data)

    code = run_fix(
        project, findings_of(project), dry_run=False, assume_yes=True, store=store, out=_Null()
    )
    assert code == 0
    assert stored["scanned/shop/settings"] == {"db_password": PW}
    assert findings_of(project) == []  # nothing left to find


def test_store_merges_into_existing_secret(server: Any, admin: httpx.Client) -> None:
    admin.put("/v1/secrets/scanned/shop/settings", json={"data": {"other": "x1"}})
    store = sdk_store(server.url, server.token)
    store("scanned/shop/settings", {"db_password": PW})
    stored = admin.get("/v1/secrets/scanned/shop/settings").json()
    assert stored["data"] == {"other": "x1", "db_password": PW}
    assert stored["version"] == 2
    store("scanned/new/place", {"api_key": PW})
    assert admin.get("/v1/secrets/scanned/new/place").json()["data"] == {"api_key": PW}


def test_store_errors_are_clear(server: Any, admin: httpx.Client) -> None:
    from secretsd.errors import Forbidden, Unavailable

    reader = admin.post("/v1/auth/tokens", json={"policies": []}).json()["token"]
    with pytest.raises(Forbidden, match="not allowed"):
        sdk_store(server.url, reader)("a/b", {"k": "v"})
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(Unavailable, match="nothing was rewritten"):
        sdk_store(f"http://127.0.0.1:{port}", "sdt_any")("a/b", {"k": "v"})


def test_cli_fix_dry_run_and_missing_credentials(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SECRETSD_ADDR", "SECRETSD_TOKEN", "SECRETSD_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["scan", str(project), "--fix", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run" in out
    assert PW not in out
    assert main(["scan", str(project), "--fix", "--yes"]) == 2
    assert "SECRETSD_ADDR" in capsys.readouterr().err
    assert main(["scan", str(project), "--fix", "--history"]) == 2


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
