"""Read throughput and latency: secretsd (cached and uncached) vs OpenBao directly.

One load generator for both sides in the same run: ``wrk`` (Debian package
``wrk``), 2 threads, 32 connections, 10 s, round-robin over 100 paths. A
Python load generator is slower than either server and would measure itself.

    python bench/api_read.py [--duration 10] [--workers 2] [--vault dev|embedded]
                             [--database sqlite|postgres]

It starts an OpenBao (a dev server, or secretsd's embedded Raft node), writes
100 secrets through secretsd, then measures:

1. OpenBao directly: ``GET /v1/secret/data/<prefix>/bench/pNN`` with a Vault token;
2. secretsd, cache on: ``GET /v1/secrets/bench/pNN`` (audit on, as always);
3. secretsd, cache off (``SECRETSD_CACHE_ENABLED=false``): every read goes to Vault.

and prints requests/s, p50 and p99 latency, and the ratios to direct OpenBao.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretsd.embedded import find_bao_binary  # noqa: E402

PATHS = 100
TOKEN = "sdt_bench-admin-token-" + "b" * 20

WRK_SCRIPT = textwrap.dedent(
    """
    local counter = 0
    local prefix = os.getenv("BENCH_PREFIX")
    local header_name = os.getenv("BENCH_HEADER")
    local header_value = os.getenv("BENCH_VALUE")
    wrk.headers[header_name] = header_value
    request = function()
      counter = counter + 1
      return wrk.format("GET", prefix .. string.format("p%02d", counter % %PATHS%))
    end
    done = function(summary, latency, requests)
      io.write(string.format(
        "RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, " ..
        "\\"p99_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d}\\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status))
    end
    """
).replace("%PATHS%", str(PATHS))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def wrk(url_prefix: str, header: str, value: str, duration: int, workdir: Path) -> dict[str, float]:
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    base = re.match(r"(http://[^/]+)(/.*)", url_prefix)
    assert base is not None
    env = dict(os.environ, BENCH_PREFIX=base.group(2), BENCH_HEADER=header, BENCH_VALUE=value)
    output = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "-s", str(script), base.group(1)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def start_secretsd(
    workdir: Path,
    name: str,
    vault_addr: str,
    vault_token: str,
    prefix: str,
    args: argparse.Namespace,
    **extra_env: str,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_VAULT_ADDR=vault_addr,
        SECRETSD_VAULT_TOKEN=vault_token,
        SECRETSD_VAULT_PREFIX=prefix,
        SECRETSD_BOOTSTRAP_TOKEN=TOKEN,
        SECRETSD_LOG_LEVEL="warning",
        SECRETSD_WORKERS=str(args.workers),
        SECRETSD_DATA_DIR=str(workdir / "data"),
        **extra_env,
    )
    if args.database == "postgres":
        env["SECRETSD_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/test"
    log = (workdir / f"{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "secretsd.cli.main", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/readyz")
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vault", choices=["dev", "embedded"], default="dev")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="secretsd-bench-"))
    prefix = f"bench{int(time.time())}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if args.vault == "dev":
            vault_port = free_port()
            vault_token = "root-bench"
            bao = subprocess.Popen(
                [
                    find_bao_binary(),
                    "server",
                    "-dev",
                    f"-dev-listen-address=127.0.0.1:{vault_port}",
                    f"-dev-root-token-id={vault_token}",
                    "-log-level=error",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(bao)
            vault_addr = f"http://127.0.0.1:{vault_port}"
            wait_for(f"{vault_addr}/v1/sys/health")
            time.sleep(1)
        else:
            from secretsd.embedded import EmbeddedOpenBao

            embedded = EmbeddedOpenBao(workdir / "embedded", prefix=prefix)
            credentials = embedded.start()
            login = httpx.post(
                f"{credentials.addr}/v1/auth/approle/login",
                json={
                    "role_id": credentials.role_id,
                    "secret_id": credentials.secret_id_file.read_text().strip(),
                },
            ).json()
            vault_addr, vault_token = credentials.addr, login["auth"]["client_token"]

        cached, url = start_secretsd(workdir, "cached", vault_addr, vault_token, prefix, args)
        processes.append(cached)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for i in range(PATHS):
            httpx.put(
                f"{url}/v1/secrets/bench/p{i:02d}",
                headers=headers,
                json={"data": {"password": f"value-{i}", "user": "bench"}},
            ).raise_for_status()

        print(
            f"wrk -t2 -c32 -d{args.duration}s over {PATHS} paths; secretsd workers={args.workers}, "
            f"vault={args.vault}, database={args.database}, audit on",
            flush=True,
        )
        direct = wrk(
            f"{vault_addr}/v1/secret/data/{prefix}/bench/",
            "X-Vault-Token",
            vault_token,
            args.duration,
            workdir,
        )
        wrk(f"{url}/v1/secrets/bench/", "Authorization", f"Bearer {TOKEN}", 2, workdir)  # warm
        hot = wrk(
            f"{url}/v1/secrets/bench/", "Authorization", f"Bearer {TOKEN}", args.duration, workdir
        )
        stop(cached)
        processes.remove(cached)

        uncached_process, url = start_secretsd(
            workdir,
            "uncached",
            vault_addr,
            vault_token,
            prefix,
            args,
            SECRETSD_CACHE_ENABLED="false",
        )
        processes.append(uncached_process)
        cold = wrk(
            f"{url}/v1/secrets/bench/", "Authorization", f"Bearer {TOKEN}", args.duration, workdir
        )

        rows = [("OpenBao direct", direct), ("secretsd cached", hot), ("secretsd uncached", cold)]
        print(f"{'':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs direct':>10}")
        for name, result in rows:
            ratio = result["rps"] / direct["rps"]
            print(
                f"{name:20} {result['rps']:9.0f} {result['p50_us'] / 1000:8.2f} "
                f"{result['p99_us'] / 1000:8.2f} {result['errors'] + result['non2xx']:7d} "
                f"{ratio:9.2f}x"
            )
        print("targets: cached >= 1.00x direct with p99 < 10 ms; uncached >= 0.50x direct")
        print(
            f"cached {hot['rps'] / direct['rps']:.2f}x (p99 {hot['p99_us'] / 1000:.2f} ms), "
            f"uncached {cold['rps'] / direct['rps']:.2f}x"
        )
    finally:
        for process in processes:
            stop(process)
        if args.vault == "embedded":
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
