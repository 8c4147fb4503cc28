"""``secretsd get/put/ls/rm/versions/export/login`` as real processes against the real service."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from secretsd.cli.dotenv import format_dotenv, parse_dotenv
from secretsd.errors import InvalidInput
from tests.conftest import RunningServer


def test_put_get_round_trip_with_values_never_on_the_command_line(cli: Any, tmp_path: Path) -> None:
    blob = bytes(range(256))
    (tmp_path / "keystore").write_bytes(blob)
    written = cli(
        "put",
        "apps/web/db",
        "user=web",
        "password=-",
        f"keystore=@{tmp_path / 'keystore'}",
        input=b"from-stdin\n",
    )
    assert written.stdout.decode().strip() == "wrote apps/web/db version 1"
    # Exact bytes, no newline added, not even the one stdin had.
    assert cli("get", "secretsd://apps/web/db#password").stdout == b"from-stdin\n"
    assert cli("get", "secretsd://apps/web/db#user").stdout == b"web"
    assert cli("get", "secretsd://apps/web/db#keystore").stdout == blob
    whole = json.loads(cli("get", "apps/web/db").stdout)
    assert whole["user"] == "web"
    as_json = json.loads(cli("get", "--json", "secretsd://apps/web/db#keystore").stdout)
    assert as_json["encoding"] == "base64" and as_json["version"] == 1

    assert json.loads(cli("put", "--json", "apps/web/db", "user=web2").stdout)["version"] == 2
    assert cli("get", "secretsd://apps/web/db?version=1#user").stdout == b"web"
    assert cli("get", "--version", "1", "secretsd://apps/web/db#user").stdout == b"web"
    cli("put", "--merge", "apps/web/db", "extra=x")
    assert json.loads(cli("get", "apps/web/db").stdout) == {"user": "web2", "extra": "x"}
    cli("put", "--cas", "1", "apps/web/db", "user=late", check=5)


def test_ls_versions_rm(cli: Any) -> None:
    cli("put", "apps/web/db", "k=v1")
    cli("put", "apps/web/db", "k=v2")
    cli("put", "apps/api/key", "k=v")
    assert cli("ls").stdout.decode().split() == ["apps/"]
    assert cli("ls", "apps").stdout.decode().split() == ["api/", "web/"]
    assert json.loads(cli("ls", "--json", "apps/web").stdout) == {"keys": ["db"]}

    lines = cli("versions", "apps/web/db").stdout.decode().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["1", "live"], ["2*", "live"]]

    cli("rm", "apps/web/db")
    cli("get", "secretsd://apps/web/db#k", check=3)
    meta = json.loads(cli("versions", "--json", "apps/web/db").stdout)
    assert meta["versions"][1]["deletion_time"]
    cli("rm", "--versions", "1", "--destroy", "apps/web/db")
    meta = json.loads(cli("versions", "--json", "apps/web/db").stdout)
    assert meta["versions"][0]["destroyed"]
    cli("rm", "--all", "apps/web/db")
    cli("versions", "apps/web/db", check=3)


def test_export_formats(cli: Any, tmp_path: Path) -> None:
    tricky = 'it\'s "quoted"\n$HOME `x` \\ end'
    (tmp_path / "tricky").write_text(tricky)
    cli("put", "apps/web/db", f"PASSWORD=@{tmp_path / 'tricky'}", "USER=web")
    cli("put", "apps/web/api", "API_KEY=k1")

    dotenv = cli("export", "apps/web/db", "secretsd://apps/web/api#API_KEY").stdout.decode()
    expected = {"PASSWORD": tricky, "USER": "web", "API_KEY": "k1"}
    assert parse_dotenv(dotenv) == expected
    # The dotenv output is POSIX-shell quoted: sourcing it gives the exact values.
    env_file = tmp_path / "app.env"
    env_file.write_text(dotenv)
    shown = subprocess.run(
        ["bash", "-c", f'set -a; . {env_file}; printf %s "$PASSWORD"'],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shown.stdout.decode() == tricky

    assert json.loads(cli("export", "--format", "json", "apps/web/db").stdout) == {
        "PASSWORD": tricky,
        "USER": "web",
    }
    assert yaml.safe_load(cli("export", "-f", "yaml", "apps/web/api").stdout) == {"API_KEY": "k1"}
    cli("export", "-f", "toml", "apps/web/api", check=2)

    cli("put", "apps/bin", "blob=-", input=b"\xff\xfe")
    failed = cli("export", "apps/bin", check=2)
    assert b"binary" in failed.stderr


def test_errors_go_through_the_one_boundary(cli: Any, server: RunningServer) -> None:
    missing = cli("get", "secretsd://apps/none#k", check=3)
    assert missing.stderr.decode().startswith("Error: ")
    assert missing.stdout == b""
    bad = cli("get", "secretsd://apps//x#k", check=2)
    assert b"segment 2 is empty" in bad.stderr
    cli("put", "apps/x", "no-equals-sign-value", check=2)
    cli("put", "apps/x", check=2)
    denied = cli(
        "get", "secretsd://apps/x#k", env={"SECRETSD_TOKEN": "sdt_unknown-token-value"}, check=4
    )
    assert b"(credentials from SECRETSD_TOKEN)" in denied.stderr
    down = cli("ls", env={"SECRETSD_ADDR": "http://127.0.0.1:9"}, check=6)
    assert b"cannot reach secretsd" in down.stderr
    assert b"Traceback" not in down.stderr + denied.stderr + bad.stderr


def test_login_stores_a_private_token_used_when_nothing_else_is_set(
    cli: Any, server: RunningServer, tmp_path: Path
) -> None:
    cli("put", "apps/web/db", "k=v")
    no_token = {"SECRETSD_TOKEN": None, "SECRETSD_ADDR": None}  # type: ignore[dict-item]
    cli("get", "secretsd://apps/web/db#k", env=no_token, check=4)
    issued = server.state.tokens.create(policies=["admin"], display_name="cli-login")
    logged = cli("login", "--addr", server.url, input=issued.token.encode() + b"\n", env=no_token)
    assert b"Logged in to" in logged.stderr
    assert issued.token.encode() not in logged.stderr + logged.stdout
    stored = tmp_path / "config" / "secretsd" / "login.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # The address and token come from the login file now.
    assert cli("get", "secretsd://apps/web/db#k", env=no_token).stdout == b"v"
    cli("logout", env=no_token)
    assert not stored.exists()
    # A wrong token is refused and nothing is stored.
    cli("login", "--addr", server.url, input=b"sdt_wrong-token-value\n", env=no_token, check=4)
    assert not stored.exists()


def test_shell_completion_is_available(cli: Any) -> None:
    shown = cli("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert b"_SECRETSD_COMPLETE" in shown.stdout


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
        st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))),
        max_size=5,
    )
)
def test_dotenv_round_trip(values: dict[str, str]) -> None:
    assert parse_dotenv(format_dotenv(values)) == values


def test_dotenv_reading() -> None:
    text = (
        "# a comment\n\n"
        "export A=1 # trailing comment\n"
        "B='single # not a comment'\n"
        'C="double \\"q\\" $NOT_EXPANDED"\n'
        "D=secretsd://apps/web/db#password\n"
        "E='multi\nline'\n"
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "single # not a comment",
        "C": 'double "q" $NOT_EXPANDED',
        "D": "secretsd://apps/web/db#password",
        "E": "multi\nline",
    }
    for bad, message in [
        ("no equals\n", "expected NAME=value"),
        ("A=two words\n", "spaces outside quotes"),
        ("A='open\n", "never closed"),
        ("1A=x\n", "expected NAME=value"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_dotenv(bad)


README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_readme_names_exactly_the_client_variables() -> None:
    from secretsd.client.config import CLIENT_ENV_VARS

    table = _section("Getting secrets").split("### Client configuration", 1)[1].split("###")[0]
    documented = set(re.findall(r"`(SECRETSD_[A-Z0-9_]+)`", table))
    assert documented == set(CLIENT_ENV_VARS)


def test_every_command_the_readme_shows_exists() -> None:
    import typer.main

    from secretsd.cli.main import app

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    shown = set(re.findall(r"^\s+secretsd ([a-z]+)", _section("Getting secrets"), re.MULTILINE))
    assert shown >= {"login", "get", "put", "ls", "rm", "versions", "export", "run"}
    assert shown <= commands
