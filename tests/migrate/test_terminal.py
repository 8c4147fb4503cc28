"""On a terminal: a table for plan and verify, a progress bar and a summary for apply."""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer, secretsd_executable
from tests.migrate.conftest import FIXTURES


def _on_tty(server: RunningServer, tmp_path: Path, *args: str) -> tuple[int, str]:
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=ADMIN_TOKEN,
        COLUMNS="200",
        TERM="xterm",
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    process = subprocess.Popen(
        [secretsd_executable(), "migrate", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    code = process.wait(60)
    os.close(primary)
    text = b"".join(chunks).decode(errors="replace")
    CANARY.texts.append(("terminal output of secretsd migrate", text))
    return code, text


def test_plan_apply_verify_on_a_terminal(server: RunningServer, tmp_path: Path) -> None:
    root = str(FIXTURES / "k8s" / "shop")
    code, text = _on_tty(server, tmp_path, "plan", "k8s", root)
    assert code == 0, text
    assert "secretsd://k8s/shop/cart-env#DB_PASSWORD" in text and "new" in text
    assert "binary" in text and "Plan " in text
    code, text = _on_tty(server, tmp_path, "apply", "k8s", root)
    assert code == 0, text
    assert "wrote 7 secret(s), 0 value(s) unchanged" in text
    code, text = _on_tty(server, tmp_path, "verify", "k8s", root)
    assert code == 0 and "in_sync" in text and "0 drifted or failed" in text
