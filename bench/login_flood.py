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
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _server import Bao, start_bao_dev, start_secretsd, stop

TOKEN = "sdt_bench-admin-token-" + "f" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def start_flood_target(
    workdir: Path, name: str, vault: Bao, workers: int, **env_extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """secretsd behind a "proxy" on loopback, so each simulated client has its own address."""
    return start_secretsd(
        workdir,
        name,
        vault.addr,
        vault.root_token,
        prefix=f"flood-{name}-{int(time.time())}",
        token=TOKEN,
        workers=workers,
        SECRETSD_TRUSTED_PROXIES="127.0.0.1",
        **env_extra,
    )


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (from /proc), in seconds."""
    total, pending = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending.extend(int(child) for child in children)
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


FLOOD_CONNECTIONS = 32
READ_LUA = """
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
"""
FLOOD_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Forwarded-For"] = "10.66.0.1"
local n = 0
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
delay = function()
  return pause
end
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"role_id": "no-such-role-%d", "secret_id": "wrong-secret-id-%d"}', n, n))
end
"""
REPORT_LUA = """
done = function(summary, latency, requests)
  local codes = ""
  io.write(string.format(
    "RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p95_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def start_wrk(
    workdir: Path,
    name: str,
    url: str,
    lua: str,
    connections: int,
    duration: float,
    delay_ms: int = 0,
) -> subprocess.Popen[str]:
    script = workdir / f"{name}.lua"
    script.write_text(lua + REPORT_LUA)
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, BENCH_AUTH=AUTH["Authorization"], BENCH_DELAY_MS=str(delay_ms)),
    )


def wrk_result(process: subprocess.Popen[str]) -> dict[str, float]:
    output, _ = process.communicate()
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def run_load(url: str, workdir: Path, duration: float, rate: float, readers: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60, headers=AUTH) as client:
        client.put("/v1/secrets/bench/flood", json={"data": {"k": "v"}}).raise_for_status()
        client.put("/v1/auth/approle/roles/honest", json={}).raise_for_status()
        role_id = client.get("/v1/auth/approle/roles/honest").json()["role_id"]
        secret_id = client.post("/v1/auth/approle/roles/honest/secret-ids", json={}).json()[
            "secret_id"
        ]
        for _ in range(20):
            client.get("/v1/secrets/bench/flood")  # every worker knows the token now

    flood = (
        start_wrk(
            workdir,
            "flood",
            f"{url}/v1/auth/approle/login",
            FLOOD_LUA,
            FLOOD_CONNECTIONS,
            duration,
            delay_ms=int(FLOOD_CONNECTIONS * 1000 / rate) if rate else 0,
        )
        if rate
        else None
    )
    if not readers:  # flood only: what one attempt costs the server
        assert flood is not None
        flooded = wrk_result(flood)
        return {"flood": flooded["rps"], "flood_requests": flooded["requests"]}
    reads = start_wrk(
        workdir, "reads", f"{url}/v1/secrets/bench/flood", READ_LUA, readers, duration
    )
    logins: list[float] = []
    login_status: Counter[int] = Counter()
    stop_at = time.monotonic() + duration
    with httpx.Client(base_url=url, timeout=60) as honest:
        n = 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            answer = honest.post(
                "/v1/auth/approle/login",
                json={"role_id": role_id, "secret_id": secret_id},
                headers={"X-Forwarded-For": f"10.0.0.{n % 200 + 1}"},
            )
            logins.append(time.perf_counter() - started)
            login_status[answer.status_code] += 1
            n += 1
            time.sleep(max(0.0, 0.25 - (time.perf_counter() - started)))
    read = wrk_result(reads)
    flooded = wrk_result(flood) if flood is not None else {"rps": 0.0, "requests": 0}
    return {
        "reads": read["rps"],
        "read_p50": read["p50_us"] / 1000,
        "read_p95": read["p95_us"] / 1000,
        "read_p99": read["p99_us"] / 1000,
        "read_errors": read["errors"] + read["non2xx"],
        "login_p50": pct(logins, 0.5) * 1000,
        "login_p95": pct(logins, 0.95) * 1000,
        "login_status": dict(login_status),
        "flood": flooded["rps"],
        "flood_requests": flooded["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rate", type=float, default=200, help="flood: logins/s offered")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="secretsd-flood-"))
    off = {"SECRETSD_AUTH_FAILURE_LIMIT_PER_CLIENT": "", "SECRETSD_AUTH_FAILURE_LIMIT_PER_ROLE": ""}
    plans: list[tuple[str, dict[str, str], float]] = [
        ("quiet (no flood)", {}, 0.0),
        ("flood, limits off (peer)", off, args.rate),
        ("flood, limits on (default)", {}, args.rate),
    ]
    rows: list[tuple[str, dict[str, Any]]] = []
    costs: list[tuple[str, float, float]] = []
    bao = start_bao_dev()
    try:
        for index, (name, env) in enumerate([("limits off", off), ("limits on", {})]):
            process, url = start_flood_target(workdir, f"c{index}", bao, args.workers, **env)
            try:
                cpu_before = tree_cpu_seconds(process.pid)
                row = run_load(url, workdir, args.duration, args.rate, 0)
                cpu = tree_cpu_seconds(process.pid) - cpu_before
                costs.append((name, row["flood"], cpu / max(row["flood_requests"], 1) * 1000))
            finally:
                stop(process)
        for index, (name, env, connections) in enumerate(plans):
            process, url = start_flood_target(workdir, f"s{index}", bao, args.workers, **env)
            try:
                cpu_before = tree_cpu_seconds(process.pid)
                row = run_load(url, workdir, args.duration, connections, args.readers)
                row["cpu"] = (tree_cpu_seconds(process.pid) - cpu_before) / args.duration
                rows.append((name, row))
            finally:
                stop(process)
    finally:
        stop(bao.process)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{args.workers} worker(s); reads: wrk -c{args.readers} closed loop; flood: wrk "
        f"{args.rate:.0f}/s invalid AppRole logins offered ({FLOOD_CONNECTIONS} connections, "
        "paced) from one address; "
        f"honest logins every 0.25 s from other addresses; {args.duration:.0f} s per row\n"
    )
    print(
        f"{'row':<28} {'reads/s':>8} {'read p50':>9} {'p95':>8} {'p99':>8} "
        f"{'login p50':>10} {'p95':>8} {'flood/s':>8} {'CPU':>5}  honest logins"
    )
    for name, r in rows:
        print(
            f"{name:<28} {r['reads']:>8.0f} {r['read_p50']:>7.1f}ms {r['read_p95']:>6.1f}ms "
            f"{r['read_p99']:>6.1f}ms {r['login_p50']:>8.1f}ms {r['login_p95']:>6.1f}ms "
            f"{r['flood']:>8.0f} {r['cpu']:>5.2f}  {r['login_status']}"
        )
    print()
    for name, rate, cost in costs:
        print(
            f"flood alone, {name:<10}: {rate:6.0f} attempts/s, server CPU {cost:.2f} ms per attempt"
        )
    print(f"CPU per flood attempt, limits on vs off: {costs[1][2] / costs[0][2]:.2f}x")
    quiet, peer, limited = (row for _, row in rows)
    print(
        f"\nunder the flood, limits on vs off: reads {limited['reads'] / peer['reads']:.2f}x, "
        f"read p95 {limited['read_p95']:.1f} vs {peer['read_p95']:.1f} ms, "
        f"login p50 {limited['login_p50']:.1f} vs {peer['login_p50']:.1f} ms; "
        f"reads kept {limited['reads'] / quiet['reads']:.0%} of the quiet rate "
        f"(limits off: {peer['reads'] / quiet['reads']:.0%})"
    )


if __name__ == "__main__":
    main()
