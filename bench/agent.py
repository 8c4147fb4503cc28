"""The agent at scale: 200 agents watching 50 paths through one secretsd.

    python bench/agent.py [--agents 200] [--paths 50] [--rounds 10] [--changes 5]
                          [--harnesses 4] [--idle 30]

Starts an OpenBao dev server behind a counting HTTP proxy (every request
secretsd makes to Vault is counted by kind), ``secretsd serve`` against the
proxy, writes ``--paths`` secrets and starts ``--agents`` sidecar agents
(``secretsd.agent.runner.Agent``, each with its own SDK ``Client`` and long-poll,
one raw file each, agent *i* on path *i mod paths*), spread over
``--harnesses`` processes. Then ``--rounds`` times it changes ``--changes``
paths through secretsd and measures:

- **Vault data reads per change**: ``GET /v1/<mount>/data/...`` requests
  Vault saw during the round, divided by the paths changed. Target:
  proportional to paths changed (about 1 per change), not to agents (4 agents
  per path here).
- **put -> file**: from just before each ``put`` to the moment each agent of
  that path has atomically replaced its file with the new value. Target: p99 < 1 s.

Last, one real ``secretsd agent sidecar`` process with one file is left idle
for ``--idle`` seconds: its RSS and CPU (psutil). Targets: < 50 MB, < 0.5% of a core.

Peer, in the same run: the Secrets Store CSI driver's rotation model (every
pod re-reads its secrets from Vault every 2 minutes, the default
``rotation-poll-interval``); its Vault reads per hour and mean propagation
follow from the same agent and path counts and are printed beside ours.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretsd.client import Client  # noqa: E402
from tests.conftest import free_port, start_bao_dev, stop_process, wait_http  # noqa: E402

TOKEN = "sdt_bench-agent-admin-token-" + "a" * 20
CSI_POLL_SECONDS = 120.0


# -- a counting proxy in front of Vault ---------------------------------------------


class VaultCounter:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        counter = self
        local = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                kind = self.command + " " + "/".join(self.path.split("?")[0].split("/")[:4])
                with counter.lock:
                    counter.counts[kind] += 1
                connection = getattr(local, "connection", None)
                if connection is None:
                    connection = local.connection = http.client.HTTPConnection(host, port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                except (OSError, http.client.HTTPException):
                    local.connection = None
                    raise
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_LIST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # secretsd closing its pooled connections at shutdown is not an error worth a trace.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)


def data_reads(counts: Counter[str]) -> int:
    return sum(n for kind, n in counts.items() if kind.startswith("GET") and "/data" in kind)


def metadata_reads(counts: Counter[str]) -> int:
    return sum(n for kind, n in counts.items() if kind.startswith("GET") and "/metadata" in kind)


# -- the agents ------------------------------------------------------------------------


def harness(url: str, workdir: str, indices: list[int], paths: int, events: Any) -> None:
    """One process running many agents; reports (agent, path, value, time) on each write."""
    from secretsd.agent.config import AgentConfig, Output
    from secretsd.agent.runner import Agent
    from secretsd.ref import Reference

    class Timed(Agent):
        index = 0

        def render_one(self, output: Output) -> bool:
            changed = super().render_one(output)
            if changed:
                value = (self.directory / output.name).read_bytes().decode()
                events.put((self.index, value, time.time()))
            return changed

    agents = []
    for index in indices:
        path = f"bench/p{index % paths:03d}"
        config = AgentConfig(
            outputs=(Output(name="value", ref=Reference(path, "v"), format="raw"),)
        )
        client = Client(url, TOKEN, auto_renew=False, report_versions=False)
        agent = Timed(config, Path(workdir) / f"agent-{index:04d}", client)
        agent.index = index
        agents.append(agent)
        threading.Thread(target=agent.run_sidecar, daemon=True).start()
    while True:
        time.sleep(3600)


def start_service(workdir: Path, vault_addr: str, vault_token: str) -> tuple[Any, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_VAULT_ADDR=vault_addr,
        SECRETSD_VAULT_TOKEN=vault_token,
        SECRETSD_VAULT_PREFIX="bench-agent",
        SECRETSD_DATA_DIR=str(workdir / "data"),
        SECRETSD_BOOTSTRAP_TOKEN=TOKEN,
        SECRETSD_PORT=str(port),
        SECRETSD_WORKERS="1",
        SECRETSD_LOG_LEVEL="warning",
    )
    executable = Path(sys.executable).parent / "secretsd"
    process = subprocess.Popen(
        [str(executable), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", timeout=60)
    return process, url


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def idle_agent(url: str, workdir: Path, seconds: float) -> dict[str, float]:
    import psutil

    config = workdir / "idle.yaml"
    config.write_text("files:\n  value: secretsd://bench/p000#v\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(SECRETSD_ADDR=url, SECRETSD_TOKEN=TOKEN)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "secretsd"), "agent", "sidecar",
         "--config", str(config), "--dir", str(workdir / "idle")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "idle" / "value").exists():
            assert time.monotonic() < deadline, "the idle agent did not render"
            time.sleep(0.05)
        time.sleep(2.0)  # settle: imports done, first long-poll in flight
        watched = psutil.Process(process.pid)
        before = watched.cpu_times()
        started = time.monotonic()
        time.sleep(seconds)
        after = watched.cpu_times()
        elapsed = time.monotonic() - started
        cpu = (after.user - before.user + after.system - before.system) / elapsed * 100
        rss = watched.memory_info().rss / 1e6
        return {"rss_mb": rss, "cpu_percent": cpu, "seconds": elapsed}
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--paths", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--harnesses", type=int, default=4)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()

    bao = start_bao_dev()
    proxy = VaultCounter(bao.addr)
    context = multiprocessing.get_context("fork")
    children: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="secretsd-bench-agent-") as temp:
        workdir = Path(temp)
        service, url = start_service(workdir, proxy.url, bao.root_token)
        try:
            with Client(url, TOKEN, auto_renew=False, report_versions=False) as writer:
                for index in range(args.paths):
                    writer.put(f"bench/p{index:03d}", {"v": f"r0-{index}"})
                events = context.Queue()
                per = [list(range(h, args.agents, args.harnesses)) for h in range(args.harnesses)]
                for indices in per:
                    child = context.Process(
                        target=harness,
                        args=(url, str(workdir), indices, args.paths, events),
                        daemon=True,
                    )
                    child.start()
                    children.append(child)
                ready: set[int] = set()
                deadline = time.monotonic() + 120
                while len(ready) < args.agents:
                    index, _, _ = events.get(timeout=max(1.0, deadline - time.monotonic()))
                    ready.add(index)
                time.sleep(2.0)
                print(f"{args.agents} agents on {args.paths} paths through one secretsd "
                      f"({args.harnesses} harness processes)")  # fmt: skip

                latencies: list[float] = []
                round_max: list[float] = []
                agents_per_path = args.agents / args.paths
                reads_per_change: list[float] = []
                idle_before = proxy.snapshot()
                time.sleep(5.0)
                idle_counts = proxy.snapshot() - idle_before
                for round_ in range(1, args.rounds + 1):
                    chosen = [(round_ * args.changes + k) % args.paths for k in range(args.changes)]
                    before = proxy.snapshot()
                    put_at: dict[int, float] = {}
                    for path_index in chosen:
                        put_at[path_index] = time.time()
                        writer.put(f"bench/p{path_index:03d}", {"v": f"r{round_}-{path_index}"})
                    waiting = {i for i in range(args.agents) if i % args.paths in set(chosen)}
                    deadline = time.monotonic() + 30
                    while waiting:
                        index, value, at = events.get(timeout=max(0.1, deadline - time.monotonic()))
                        if value == f"r{round_}-{index % args.paths}" and index in waiting:
                            latencies.append(at - put_at[index % args.paths])
                            waiting.discard(index)
                    round_max.append(max(latencies[-len(chosen) * int(agents_per_path) :]))
                    time.sleep(0.3)  # let stragglers' reads land in this round's count
                    delta = proxy.snapshot() - before
                    reads_per_change.append(data_reads(delta) / len(chosen))

            median = statistics.median(latencies)
            p99 = percentile(latencies, 0.99)
            metadata_per_s = metadata_reads(idle_counts) / 5.0
            print("\nput -> file (every agent of every changed path)")
            print(f"  median {median * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms   "
                  f"max {max(latencies) * 1000:8.1f} ms   n={len(latencies)}")  # fmt: skip
            print("  slowest per round (ms): " + " ".join(f"{m * 1000:.0f}" for m in round_max))
            print("\nVault load")
            print(f"  data reads per change        {statistics.mean(reads_per_change):6.2f}  "
                  f"(max {max(reads_per_change):.2f}; {agents_per_path:.0f} agents per path)")  # fmt: skip
            print(f"  idle data reads/s            {data_reads(idle_counts) / 5.0:6.2f}")
            print(f"  idle metadata polls/s        {metadata_per_s:6.2f}  "
                  f"(secretsd's per-path watcher, {args.paths} paths; not per agent)")  # fmt: skip

            idle = idle_agent(url, workdir, args.idle)
            print(f"\none idle agent process ({idle['seconds']:.0f} s)")
            print(f"  RSS {idle['rss_mb']:6.1f} MB   CPU {idle['cpu_percent']:6.3f} % of a core")

            csi_reads_per_hour = args.agents * 3600 / CSI_POLL_SECONDS
            ours_per_hour = metadata_per_s * 3600
            print("\npeer: Secrets Store CSI driver rotation (each pod re-reads every 120 s)")
            print(f"  mean propagation   CSI {CSI_POLL_SECONDS / 2:8.1f} s     secretsd "
                  f"{statistics.mean(latencies):8.3f} s   ratio "
                  f"{(CSI_POLL_SECONDS / 2) / statistics.mean(latencies):8.0f}x faster")  # fmt: skip
            print(f"  idle Vault reads/h CSI {csi_reads_per_hour:8.0f}       secretsd "
                  f"{ours_per_hour:8.0f} (metadata)   ratio {ours_per_hour / csi_reads_per_hour:5.1f}x")  # fmt: skip
            print(json.dumps({
                "put_to_file_ms": {"median": median * 1000, "p99": p99 * 1000},
                "vault_data_reads_per_change": statistics.mean(reads_per_change),
                "idle_metadata_polls_per_s": metadata_per_s,
                "idle_agent": idle,
            }))  # fmt: skip
        finally:
            for child in children:
                child.kill()
            stop_process(service)
            stop_process(bao.process)


if __name__ == "__main__":
    main()
