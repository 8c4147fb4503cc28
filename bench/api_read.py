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
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from _server import start_bao_dev, start_secretsd, stop

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
            bao = start_bao_dev()
            processes.append(bao.process)
            vault_addr, vault_token = bao.addr, bao.root_token
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

        server = {
            "prefix": prefix,
            "token": TOKEN,
            "workers": args.workers,
            "data_dir": workdir / "data",
            **(
                {"SECRETSD_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"}
                if args.database == "postgres"
                else {}
            ),
        }
        cached, url = start_secretsd(workdir, "cached", vault_addr, vault_token, **server)
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
            workdir, "uncached", vault_addr, vault_token, SECRETSD_CACHE_ENABLED="false", **server
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
