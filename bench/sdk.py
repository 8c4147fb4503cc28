"""SDK latency: a cached ``get``, and a ``put`` by one client to the callbacks of 200 watchers.

    python bench/sdk.py [--gets 200000] [--rounds 30] [--watchers 200] [--workers 1]

Starts an OpenBao dev server and ``secretsd serve`` (a separate process, so the
service does not share this process's GIL), then measures:

1. ``Client.get("secretsd://bench/db#password")`` answered from the SDK's cache:
   an entry within ``cache_ttl``, and a path kept current by a watch (live);
   each call timed on its own, median and p99 in microseconds.
2. From just before ``writer.put()`` to each watcher's callback, with
   ``--watchers`` watchers on one path, in two shapes:
   a. one ``Client`` holding all the watchers (they share one long-poll);
   b. one ``AsyncClient`` per watcher (each has its own long-poll, so the
      service fans one change out to 200 waiting requests).
   ``--rounds`` writes, every watcher timed each round; median and p99.

Targets (issue): cached get median < 50 us; put -> callback p99 < 1 s and
median < 200 ms with 200 watchers on one path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretsd.client import AsyncClient, Client  # noqa: E402
from tests.conftest import free_port, start_bao_dev, stop_process, wait_http  # noqa: E402

TOKEN = "sdt_bench-sdk-admin-token-" + "s" * 20


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(name: str, samples: list[float], unit: str, scale: float) -> dict[str, float]:
    median = statistics.median(samples) * scale
    p99 = percentile(samples, 0.99) * scale
    print(f"  {name:<46} median {median:9.2f} {unit}   p99 {p99:9.2f} {unit}   n={len(samples)}")
    return {"median": median, "p99": p99}


def start_service(workdir: Path, vault_addr: str, vault_token: str, workers: int) -> Any:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_VAULT_ADDR=vault_addr,
        SECRETSD_VAULT_TOKEN=vault_token,
        SECRETSD_VAULT_PREFIX="bench-sdk",
        SECRETSD_DATA_DIR=str(workdir / "data"),
        SECRETSD_BOOTSTRAP_TOKEN=TOKEN,
        SECRETSD_PORT=str(port),
        SECRETSD_WORKERS=str(workers),
        SECRETSD_LOG_LEVEL="warning",
    )
    executable = Path(sys.executable).parent / "secretsd"
    process = subprocess.Popen(
        [str(executable), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", timeout=60)
    return process, url


def bench_cached_get(url: str, gets: int) -> dict[str, dict[str, float]]:
    print(f"cached get ({gets} calls each)")
    results = {}
    with Client(url, TOKEN, cache_ttl=3600, auto_renew=False) as client:
        client.put("bench/db", {"password": "bench-value", "user": "bench"})
        client.put("bench/live", {"password": "bench-value"})
        client.watch("bench/live", lambda secret: None)
        for name, ref in [
            ("within cache_ttl", "secretsd://bench/db#password"),
            ("watched path (kept current by the long-poll)", "secretsd://bench/live#password"),
        ]:
            client.get(ref)
            samples = []
            clock = time.perf_counter_ns
            get = client.get
            for _ in range(gets):
                started = clock()
                get(ref)
                samples.append(clock() - started)
            results[name] = describe(name, samples, "us", 1e-3)
    return results


def bench_shared_watch(url: str, watchers: int, rounds: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    arrived: list[float] = []
    done = threading.Event()

    def callback(_secret: Any) -> None:
        now = time.perf_counter()
        with lock:
            arrived.append(now)
            if len(arrived) == watchers:
                done.set()

    with (
        Client(url, TOKEN, auto_renew=False) as writer,
        Client(url, TOKEN, auto_renew=False) as reader,
    ):
        writer.put("bench/fanout-shared", {"v": "0"})
        for _ in range(watchers):
            reader.watch("bench/fanout-shared", callback)
        time.sleep(0.3)
        for round_number in range(1, rounds + 1):
            arrived.clear()
            done.clear()
            started = time.perf_counter()
            writer.put("bench/fanout-shared", {"v": str(round_number)})
            if not done.wait(10):
                raise SystemExit(f"round {round_number}: only {len(arrived)} callbacks in 10 s")
            latencies.extend(t - started for t in arrived)
            time.sleep(0.05)
    return describe(f"one Client, {watchers} watchers, one long-poll", latencies, "ms", 1e3)


async def _separate_clients(url: str, watchers: int, rounds: int) -> list[float]:
    latencies: list[float] = []
    arrived: list[float] = []
    done = asyncio.Event()

    def callback(_secret: Any) -> None:
        arrived.append(time.perf_counter())
        if len(arrived) == watchers:
            done.set()

    clients = [AsyncClient(url, TOKEN, auto_renew=False) for _ in range(watchers)]
    async with AsyncClient(url, TOKEN, auto_renew=False) as writer:
        await writer.put("bench/fanout-many", {"v": "0"})
        try:
            await asyncio.gather(*(c.watch("bench/fanout-many", callback) for c in clients))
            await asyncio.sleep(0.5)
            for round_number in range(1, rounds + 1):
                arrived.clear()
                done.clear()
                started = time.perf_counter()
                await writer.put("bench/fanout-many", {"v": str(round_number)})
                try:
                    await asyncio.wait_for(done.wait(), 10)
                except TimeoutError:
                    raise SystemExit(
                        f"round {round_number}: only {len(arrived)} callbacks in 10 s"
                    ) from None
                latencies.extend(t - started for t in arrived)
                await asyncio.sleep(0.05)
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    return latencies


def bench_separate_watch(url: str, watchers: int, rounds: int) -> dict[str, float]:
    latencies = asyncio.run(_separate_clients(url, watchers, rounds))
    return describe(f"{watchers} AsyncClients, {watchers} long-polls", latencies, "ms", 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gets", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    bao = start_bao_dev()
    with tempfile.TemporaryDirectory(prefix="secretsd-bench-sdk-") as tmp:
        service, url = start_service(Path(tmp), bao.addr, bao.root_token, args.workers)
        try:
            print(f"secretsd {url} ({args.workers} worker), OpenBao dev {bao.addr}\n")
            gets = bench_cached_get(url, args.gets)
            print(f"\nput -> watch callback ({args.rounds} rounds)")
            shared = bench_shared_watch(url, args.watchers, args.rounds)
            separate = bench_separate_watch(url, args.watchers, args.rounds)
        finally:
            stop_process(service)
            stop_process(bao.process)
    cached = gets["within cache_ttl"]["median"]
    worst = max(shared["p99"], separate["p99"])
    slowest_median = max(shared["median"], separate["median"])
    print("\ntargets")
    print(
        f"  cached get median < 50 us:        {cached:.2f} us  {'ok' if cached < 50 else 'MISSED'}"
    )
    print(
        f"  put -> callback p99 < 1000 ms:    {worst:.1f} ms  {'ok' if worst < 1000 else 'MISSED'}"
    )
    print(
        f"  put -> callback median < 200 ms:  {slowest_median:.1f} ms  "
        f"{'ok' if slowest_median < 200 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
