"""The sidecar follows its pod's annotations: outputs added and removed without a restart.

The annotations file is laid out and updated the way the kubelet does it (a
timestamped directory, the ``..data`` symlink swapped atomically), and the
agent runs against the real service and OpenBao.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretsd.agent.reload import ConfigSource
from secretsd.agent.runner import Agent
from secretsd.client import Client
from tests.conftest import ADMIN_TOKEN, RunningServer
from tests.test_agent import go_quote


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    running: RunningServer = server_factory(max_wait=1.0)
    return running


class Podinfo:
    """A downward-API volume: ``annotations -> ..data/annotations``, ``..data -> ..<stamp>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.generation = 0

    @property
    def file(self) -> Path:
        return self.root / "annotations"

    def write(self, annotations: dict[str, str]) -> None:
        self.generation += 1
        stamp = self.root / f"..2026_11_26_{self.generation:04d}"
        stamp.mkdir()
        body = "".join(f"{k}={go_quote(v)}\n" for k, v in sorted(annotations.items()))
        (stamp / "annotations").write_text(body)
        swap = self.root / "..data_tmp"
        swap.symlink_to(stamp.name)
        os.replace(swap, self.root / "..data")  # the atomic swap
        if not self.file.is_symlink():
            self.file.symlink_to("..data/annotations")


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def sidecar(server: RunningServer, tmp_path: Path) -> Iterator[tuple[Podinfo, Path, Agent]]:
    podinfo = Podinfo(tmp_path / "podinfo")
    podinfo.write({"secretsd.io/secret-password": "secretsd://apps/r/db#password"})
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, report_versions=False) as sdk:
        sdk.put("apps/r/db", {"user": "reload-user", "password": "reload-pw-1"})
        sdk.put("apps/r/other", {"k": "reload-other-1"})
    client = Client(
        server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0, report_versions=False
    )
    source = ConfigSource(podinfo.file, None)
    out = tmp_path / "out"
    agent = Agent(source.load(), out, client, source=source)
    thread = threading.Thread(target=agent.run_sidecar, daemon=True)
    thread.start()
    try:
        yield podinfo, out, agent
    finally:
        agent.stop()
        thread.join(15)
        agent.close()
        client.close()


def test_outputs_follow_the_annotations_and_bad_ones_keep_the_last_good_files(
    server: RunningServer,
    sidecar: tuple[Podinfo, Path, Agent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    podinfo, out, agent = sidecar
    eventually(lambda: (out / "password").exists(), "the first file")
    assert (out / "password").read_bytes() == b"reload-pw-1"
    # kubectl annotate: two more files, one from the same secret (its watch is shared).
    podinfo.write(
        {
            "secretsd.io/secret-password": "secretsd://apps/r/db#password",
            "secretsd.io/secret-user": "secretsd://apps/r/db#user",
            "secretsd.io/secret-other.json": "secretsd://apps/r/other",
            "unrelated.example.com/owner": "team-a",
        }
    )
    eventually(lambda: (out / "user").exists() and (out / "other.json").exists(), "new files")
    assert (out / "user").read_bytes() == b"reload-user"
    assert json.loads((out / "other.json").read_text()) == {"k": "reload-other-1"}
    eventually(lambda: set(agent._watches) == {"apps/r/db", "apps/r/other"}, "one watch per path")
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, report_versions=False) as sdk:
        sdk.put("apps/r/db", {"user": "reload-user-2", "password": "reload-pw-2"})
        eventually(
            lambda: (
                (out / "password").read_bytes() == b"reload-pw-2"
                and (out / "user").read_bytes() == b"reload-user-2"
            ),
            "a put to reach both files of one secret",
        )
        # A broken edit: logged, ignored; files and configuration stay.
        caplog.set_level(logging.WARNING, logger="secretsd.agent.runner")
        podinfo.write(
            {
                "secretsd.io/secret-user": "secretsd://apps/r/db#user",
                "secretsd.io/format-user": "toml",
            }
        )
        eventually(
            lambda: any("not valid, keeping the current one" in r.message for r in caplog.records),
            "the bad configuration to be noticed",
        )
        assert {o.name for o in agent.config.outputs} == {"password", "user", "other.json"}
        assert (out / "password").read_bytes() == b"reload-pw-2"
        assert not [r for r in caplog.records if "reload-pw" in r.getMessage()]
        # Fixed, and two files removed: their files go, their watch stops, the rest runs on.
        podinfo.write({"secretsd.io/secret-user": "secretsd://apps/r/db#user"})
        eventually(
            lambda: not (out / "password").exists() and not (out / "other.json").exists(),
            "removed outputs to disappear",
        )
        eventually(lambda: set(agent._watches) == {"apps/r/db"}, "the unused watch to stop")
        sdk.put("apps/r/db", {"user": "reload-user-3", "password": "reload-pw-3"})
        eventually(lambda: (out / "user").read_bytes() == b"reload-user-3", "updates to go on")
    assert sorted(p.name for p in out.iterdir()) == ["user"]


def test_an_unchanged_file_is_not_reloaded(tmp_path: Path) -> None:
    podinfo = Podinfo(tmp_path / "podinfo")
    podinfo.write({"secretsd.io/secret-a": "secretsd://apps/a#k"})
    source = ConfigSource(podinfo.file, None)
    assert [o.name for o in source.load().outputs] == ["a"]
    assert source.changed() is False
    podinfo.write({"secretsd.io/secret-b": "secretsd://apps/b#k"})
    assert source.changed() is True
    assert source.changed() is False  # reported once
    assert [o.name for o in source.load().outputs] == ["b"]
