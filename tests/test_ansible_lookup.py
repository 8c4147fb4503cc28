"""The Ansible lookup plugin in real ``ansible localhost -m debug`` runs against the real service.

Only synthetic values are used, and outputs are shown only when an assertion fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from secretsd.ansible import LOOKUP_PLUGINS
from secretsd.client import Client
from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer
from tests.test_sdk import Counting

ANSIBLE = Path(sys.executable).parent / "ansible"


@pytest.fixture
def ansible(server: RunningServer, tmp_path: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRETSD_", "ANSIBLE_"))}
    env.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=ADMIN_TOKEN,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        ANSIBLE_LOOKUP_PLUGINS=str(LOOKUP_PLUGINS),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="minimal",
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
    )

    def run(msg: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(ANSIBLE), "localhost", "-m", "debug", "-a", f"msg={msg}"],
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            timeout=120,
            cwd=tmp_path,
        )
        # stdout shows the msg by design; stderr (errors, warnings) must show no value.
        CANARY.texts.append(("stderr of ansible", result.stderr))
        return result

    return run


def _msg(output: str) -> Any:
    """The debug task's msg from the minimal callback's ``localhost | SUCCESS => {...}``."""
    match = re.search(r"SUCCESS => (\{.*\})\s*$", output, re.DOTALL)
    assert match, "ansible printed no SUCCESS result"
    return json.loads(match.group(1))["msg"]


def test_lookup_in_an_ad_hoc_debug_run(ansible: Any, server: RunningServer) -> None:
    with Client(server.url, ADMIN_TOKEN, transport=Counting()) as sdk:
        sdk.put("apps/web/db", {"password": "pw-synthetic-ansible", "user": "web"})
    result = ansible("{{ lookup('secretsd', 'secretsd://apps/web/db#password') }}")
    assert result.returncode == 0, "ansible failed: " + result.stderr[-2000:]
    assert _msg(result.stdout) == "pw-synthetic-ansible"


def test_many_references_whole_maps_and_values_that_look_like_templates(
    ansible: Any, server: RunningServer, tmp_path: Path
) -> None:
    with Client(server.url, ADMIN_TOKEN, transport=Counting()) as sdk:
        sdk.put("apps/web/db", {"password": "pw-synthetic", "user": "web"})
        sdk.put("apps/web/tmpl", {"raw": "{{ 7 * 6 }}"})
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN_TOKEN)
    msg = (
        "{{ [query('secretsd', 'secretsd://apps/web/db#user', 'secretsd://apps/web/tmpl#raw'), "
        "lookup('secretsd', 'secretsd://apps/web/db')['password']] }}"
    )
    # Configured through a token file this time, and no SECRETSD_TOKEN.
    result = ansible(msg, SECRETSD_TOKEN="", SECRETSD_TOKEN_FILE=str(token_file))
    assert result.returncode == 0, "ansible failed: " + result.stderr[-2000:]
    # A value that looks like a template is returned as it is, never evaluated.
    assert _msg(result.stdout) == [["web", "{{ 7 * 6 }}"], "pw-synthetic"]


def test_a_failed_lookup_fails_the_task_with_the_sdk_message(ansible: Any) -> None:
    result = ansible("{{ lookup('secretsd', 'secretsd://apps/missing#password') }}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "secretsd lookup:" in output and "'apps/missing' does not exist" in output
    bad = ansible("{{ lookup('secretsd', 'not-a-reference-but-a-value') }}")
    assert bad.returncode != 0
    assert "does not start with 'secretsd://'" in bad.stdout + bad.stderr
