"""Authenticated reads and honest logins during a flood of invalid AppRole logins.

Issue 8, item 11: 200 invalid AppRole logins per second pushed login p50 to
8.4 s and authenticated reads to p95 1.2 s. This runs the same flood against
``secretsd serve`` twice in one run, with the failed-authentication limits off
(the peer: secretsd without limiting) and on (the defaults), plus a quiet
baseline, and prints reads and logins latency and the flood's answers.

    python bench/login_flood.py [--duration 15] [--rate 200] [--workers 2] [--readers 4]

Client addresses: everything runs on loopback, so secretsd is started with
``SECRETSD_TRUSTED_PROXIES=127.0.0.1`` and each simulated client sends its own
``X-Forwarded-For`` (the attacker 10.66.0.1, honest hosts 10.0.0.x), as
clients behind a load balancer would look. Load: ``--readers`` closed-loop
readers of one secret with a known token; one honest AppRole login every
0.25 s; the flood paced open-loop at ``--rate`` per second (up to 512 in
flight), each with a random role_id and secret_id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretsd.embedded import find_bao_binary  # noqa: E402

TOKEN = "sdt_bench-admin-token-" + "f" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


def start_secretsd(
    workdir: Path, name: str, vault_addr: str, vault_token: str, workers: int, **env_extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_VAULT_ADDR=vault_addr,
        SECRETSD_VAULT_TOKEN=vault_token,
        SECRETSD_VAULT_PREFIX=f"flood-{name}-{int(time.time())}",
        SECRETSD_BOOTSTRAP_TOKEN=TOKEN,
        SECRETSD_LOG_LEVEL="warning",
        SECRETSD_WORKERS=str(workers),
        SECRETSD_DATA_DIR=str(workdir / name),
        SECRETSD_TRUSTED_PROXIES="127.0.0.1",
        **env_extra,
    )
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


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(url: str, duration: float, rate: float, readers: int) -> dict[str, object]:
    limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.put("/v1/secrets/bench/flood", json={"data": {"k": "v"}}, headers=AUTH)
        await client.put("/v1/auth/approle/roles/honest", json={}, headers=AUTH)
        role_id = (await client.get("/v1/auth/approle/roles/honest", headers=AUTH)).json()[
            "role_id"
        ]
        secret_id = (
            await client.post("/v1/auth/approle/roles/honest/secret-ids", json={}, headers=AUTH)
        ).json()["secret_id"]
        await client.get("/v1/secrets/bench/flood", headers=AUTH)  # the token is now known

        stop_at = time.monotonic() + duration
        reads: list[float] = []
        read_status: Counter[int] = Counter()
        logins: list[float] = []
        login_status: Counter[int] = Counter()
        flood_status: Counter[int | str] = Counter()
        in_flight: set[asyncio.Task[None]] = set()

        async def reader() -> None:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                answer = await client.get("/v1/secrets/bench/flood", headers=AUTH)
                reads.append(time.perf_counter() - started)
                read_status[answer.status_code] += 1

        async def honest(n: int) -> None:
            started = time.perf_counter()
            answer = await client.post(
                "/v1/auth/approle/login",
                json={"role_id": role_id, "secret_id": secret_id},
                headers={"X-Forwarded-For": f"10.0.0.{n % 200 + 1}"},
            )
            logins.append(time.perf_counter() - started)
            login_status[answer.status_code] += 1

        async def honest_loop() -> None:
            n = 0
            tasks = []
            while time.monotonic() < stop_at:
                tasks.append(asyncio.create_task(honest(n)))
                n += 1
                await asyncio.sleep(0.25)
            await asyncio.gather(*tasks)

        async def bad() -> None:
            try:
                answer = await client.post(
                    "/v1/auth/approle/login",
                    json={"role_id": secrets.token_hex(8), "secret_id": secrets.token_hex(16)},
                    headers={"X-Forwarded-For": "10.66.0.1"},
                )
                flood_status[answer.status_code] += 1
            except httpx.HTTPError as error:
                flood_status[type(error).__name__] += 1

        async def flood() -> None:
            if rate <= 0:
                return
            interval, sent, started = 1.0 / rate, 0, time.monotonic()
            while time.monotonic() < stop_at:
                if len(in_flight) < 512:
                    task = asyncio.create_task(bad())
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * interval - time.monotonic()))

        await asyncio.gather(*(reader() for _ in range(readers)), honest_loop(), flood())
        if in_flight:
            await asyncio.wait(in_flight, timeout=120)
    return {
        "reads": len(reads) / duration,
        "read_p50": pct(reads, 0.5) * 1000,
        "read_p95": pct(reads, 0.95) * 1000,
        "read_p99": pct(reads, 0.99) * 1000,
        "read_status": dict(read_status),
        "login_p50": pct(logins, 0.5) * 1000,
        "login_p95": pct(logins, 0.95) * 1000,
        "login_status": dict(login_status),
        "flood": sum(flood_status.values()) / duration,
        "flood_status": dict(flood_status),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="secretsd-flood-"))
    vault_port = free_port()
    bao = subprocess.Popen(
        [
            find_bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{vault_port}",
            "-dev-root-token-id=root-bench",
            "-log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    vault_addr = f"http://127.0.0.1:{vault_port}"
    rows: list[tuple[str, dict[str, object]]] = []
    try:
        wait_for(f"{vault_addr}/v1/sys/health")
        time.sleep(1)
        plans = [
            ("no flood, limits on", {}, 0.0),
            (
                "flood, limits off (peer)",
                {
                    "SECRETSD_AUTH_FAILURE_LIMIT_PER_CLIENT": "",
                    "SECRETSD_AUTH_FAILURE_LIMIT_PER_ROLE": "",
                },
                args.rate,
            ),
            ("flood, limits on (default)", {}, args.rate),
        ]
        for index, (name, env, rate) in enumerate(plans):
            process, url = start_secretsd(
                workdir, f"s{index}", vault_addr, "root-bench", args.workers, **env
            )
            try:
                rows.append((name, asyncio.run(run_load(url, args.duration, rate, args.readers))))
            finally:
                stop(process)
    finally:
        stop(bao)

    print(
        f"\n{args.workers} worker(s), {args.readers} readers, flood {args.rate:.0f}/s offered, "
        f"{args.duration:.0f} s per row\n"
    )
    print(
        f"{'row':<28} {'reads/s':>8} {'read p50':>9} {'p95':>8} {'p99':>8} "
        f"{'login p50':>10} {'p95':>8} {'flood/s':>8}  answers"
    )
    for name, r in rows:
        print(
            f"{name:<28} {r['reads']:>8.0f} {r['read_p50']:>7.1f}ms {r['read_p95']:>6.1f}ms "
            f"{r['read_p99']:>6.1f}ms {r['login_p50']:>8.1f}ms {r['login_p95']:>6.1f}ms "
            f"{r['flood']:>8.0f}  reads {r['read_status']} logins {r['login_status']} "
            f"flood {r['flood_status']}"
        )
    peer, limited = rows[1][1], rows[2][1]
    print(
        f"\nread p95 with limits / without: {limited['read_p95']:.1f} / {peer['read_p95']:.1f} ms "
        f"({float(peer['read_p95']) / max(float(limited['read_p95']), 1e-9):.1f}x better); "  # type: ignore[arg-type]
        f"login p50 {limited['login_p50']:.1f} / {peer['login_p50']:.1f} ms"
    )


if __name__ == "__main__":
    main()
