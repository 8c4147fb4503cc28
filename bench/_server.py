"""Start-up shared by the HTTP benchmarks: an OpenBao dev server and ``secretsd serve``.

The benchmarks run the service as operators do (``secretsd serve`` in its own
process, its own workers) against a real OpenBao, started by the same helpers
as the test suite's (``tests/conftest.py``), so a benchmark measures the
server the tests check. Import it before anything else of the repository: it
puts the repository root on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import (  # noqa: E402
    Bao,
    free_port,
    start_bao_dev,
    stop_process,
    wait_http,
)

__all__ = ["ROOT", "Bao", "free_port", "start_bao_dev", "start_secretsd", "stop"]


def start_secretsd(
    workdir: Path,
    name: str,
    vault_addr: str,
    vault_token: str,
    *,
    prefix: str,
    token: str,
    workers: int,
    data_dir: Path | None = None,
    **extra_env: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """``secretsd serve`` on a free port, ready; its output goes to ``workdir/<name>.log``.

    Only the ``SECRETSD_*`` settings given here reach it (the caller's own are
    dropped), so a benchmark does not measure whatever the shell had set.
    ``token`` becomes the bootstrap admin token; ``data_dir`` defaults to
    ``workdir/<name>``.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_VAULT_ADDR=vault_addr,
        SECRETSD_VAULT_TOKEN=vault_token,
        SECRETSD_VAULT_PREFIX=prefix,
        SECRETSD_BOOTSTRAP_TOKEN=token,
        SECRETSD_LOG_LEVEL="warning",
        SECRETSD_WORKERS=str(workers),
        SECRETSD_DATA_DIR=str(data_dir or workdir / name),
        **extra_env,
    )
    with (workdir / f"{name}.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "secretsd.cli.main", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", timeout=60)
    except AssertionError:
        stop(process)
        raise SystemExit(
            f"secretsd {name!r} did not become ready; see {workdir / name}.log"
        ) from None
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s (a worker may be finishing a long request)."""
    stop_process(process, timeout=30)
