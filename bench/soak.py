"""Soak: N minutes of mixed load through two secretsd replicas on a 3-node OpenBao Raft cluster.

    python bench/soak.py [--minutes 10] [--workers 1] [--database-url postgresql://...] [--json]

Starts the real thing with the fault-suite harness (``tests/faults/cluster.py``): three
``bao server`` Raft nodes on loopback, two ``secretsd serve`` replicas on one PostgreSQL
schema (``--database-url``, default ``SECRETSD_TEST_DATABASE_URL``; the schema is created
and dropped), each pointing at a different node. Then, for ``--minutes``, round-robin
over both replicas:

- readers (4 threads): ``GET /v1/secrets/soak/pNN`` over 50 paths (an AppRole token);
- a writer: ``PUT`` a new version of a random path every 0.1 s (admin token);
- long-pollers (2 threads): ``GET ?wait=5&after=<version>`` on the hot path;
- logins: an AppRole login every 0.5 s, each followed by a read with the new token;
- a login flood: invalid AppRole logins to another role (``soak-flood``), from the same
  address as the honest logins, as fast as one thread sends them: the flood is refused
  (429 once its budget is spent) while the honest role's logins keep succeeding.

It prints, per kind: requests, throughput, p50/p99 latency, errors (5xx and transport
errors; a refused flood login, 400/401/403/429, is expected, not an error); the RSS of
each replica's process tree sampled every 10 s (growth from the first sample after the
first fifth of the run to the last: should be flat); read throughput of the last third
against the first third (the peer here is the service itself at the start of the run);
audit records and ``secretsd audit verify`` at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.cluster import BaoCluster, Replica, audit_verify_command  # noqa: E402

ADMIN = "sdt_soak-admin-token-" + "s" * 24
PATHS = [f"soak/p{n:02d}" for n in range(50)]
EXPECTED_REFUSALS = {400, 401, 403, 429}


class Books:
    """Thread-safe tallies: latencies and outcomes per kind, timestamped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.done: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.refused: dict[str, int] = defaultdict(int)
        self.woke = 0  # long-polls answered with a newer version (not a timeout)

    def record(self, kind: str, started: float, outcome: int | str, expect_refusal: bool) -> None:
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latency[kind].append(elapsed)
            self.done[kind].append(time.monotonic())
            if isinstance(outcome, int) and outcome < 400:
                return
            if expect_refusal and outcome in EXPECTED_REFUSALS:
                self.refused[kind] += 1
            else:
                self.errors[kind][str(outcome)] += 1


def call(
    books: Books,
    kind: str,
    client: httpx.Client,
    method: str,
    url: str,
    expect_refusal: bool = False,
    **kwargs: Any,
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        answer = client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        books.record(kind, started, type(error).__name__, expect_refusal)
        return None
    books.record(kind, started, answer.status_code, expect_refusal)
    return answer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def tree_rss(pid: int) -> int:
    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.Error:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    parser.add_argument("--database-url", default=os.environ.get("SECRETSD_TEST_DATABASE_URL"))
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql://"):
        parser.error("--database-url postgresql://... (or SECRETSD_TEST_DATABASE_URL) is required")

    say = (lambda _m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(
        args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{separator}options=-csearch_path%3D{schema}"
    workdir = Path(tempfile.mkdtemp(prefix="secretsd-soak-"))
    cluster = BaoCluster(workdir / "raft")
    replicas: list[Replica] = []
    try:
        say("starting a 3-node OpenBao Raft cluster...")
        cluster.start()
        for index, name in enumerate(("a", "b")):
            say(f"starting replica {name}...")
            replica = Replica(
                name, workdir / name, url, cluster.nodes[index + 1].addr, cluster.root_token,
                ADMIN, vault_prefix="soak", workers=args.workers,
            )  # fmt: skip
            replicas.append(replica.start())
        report = run(args.minutes, replicas, say)
        say("verifying the audit chain...")
        verdict = subprocess.run(
            audit_verify_command(replicas),
            capture_output=True, text=True, env=replicas[0].env, timeout=600,
        )  # fmt: skip
        report["audit_verify"] = json.loads(verdict.stdout) if verdict.stdout else verdict.stderr
        with engine.connect() as connection:
            report["audit_records"] = connection.execute(
                sqlalchemy.text(f'SELECT count(*) FROM "{schema}".audit_log')
            ).scalar_one()
    finally:
        for replica in replicas:
            replica.stop()
        cluster.stop()
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    print_report(report, args.json)
    ok = isinstance(report["audit_verify"], dict) and report["audit_verify"].get("ok") is True
    return 0 if ok else 1


def run(minutes: float, replicas: list[Replica], say: Any) -> dict[str, Any]:
    books = Books()
    stop = threading.Event()
    urls = [r.url for r in replicas]
    with httpx.Client(base_url=urls[0], headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        admin.put(
            "/v1/policies/soak", json={"rules": [{"path": "soak/**", "capabilities": ["read"]}]}
        )
        # The readers' token must outlive the run (a 10 min TTL expired in the last
        # second of a 10 min soak: 4 reads got 401).
        ttl = f"{math.ceil(minutes) + 5}m"
        admin.put("/v1/auth/approle/roles/soak", json={"policies": ["soak"], "token_ttl": ttl})
        role_id = admin.get("/v1/auth/approle/roles/soak").json()["role_id"]
        admin.put("/v1/auth/approle/roles/soak-flood", json={"policies": ["soak"]})
        flood_role_id = admin.get("/v1/auth/approle/roles/soak-flood").json()["role_id"]
        secret_id = admin.post("/v1/auth/approle/roles/soak/secret-ids", json={}).json()[
            "secret_id"
        ]
        for path in PATHS:
            admin.put(f"/v1/secrets/{path}", json={"data": {"v": secrets.token_hex(8)}})
        reader_token = httpx.post(
            f"{urls[0]}/v1/auth/approle/login", json={"role_id": role_id, "secret_id": secret_id}
        ).json()["token"]

    def clients(token: str | None, timeout: float = 15) -> list[httpx.Client]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return [httpx.Client(base_url=u, headers=headers, timeout=timeout) for u in urls]

    def reader(seed: int) -> None:
        pool, turn = clients(reader_token), seed
        while not stop.is_set():
            turn += 1
            call(books, "read", pool[turn % 2], "GET", f"/v1/secrets/{random.choice(PATHS)}")

    def writer() -> None:
        pool, turn = clients(ADMIN), 0
        while not stop.wait(0.1):
            turn += 1
            body = {"data": {"v": secrets.token_hex(8)}}
            call(
                books,
                "write",
                pool[turn % 2],
                "PUT",
                f"/v1/secrets/{random.choice(PATHS)}",
                json=body,
            )

    def long_poller(seed: int) -> None:
        pool, turn, after = clients(reader_token, timeout=30), seed, 0
        while not stop.is_set():
            turn += 1
            answer = call(books, "long-poll", pool[turn % 2], "GET", f"/v1/secrets/{PATHS[0]}",
                          params={"wait": 5, "after": after})  # fmt: skip
            if answer is not None and answer.status_code == 200:
                after = int(answer.json()["version"])
                with books.lock:
                    books.woke += 1

    def login() -> None:
        pool, turn = clients(None), 0
        while not stop.wait(0.5):
            turn += 1
            body = {"role_id": role_id, "secret_id": secret_id}
            answer = call(
                books, "login", pool[turn % 2], "POST", "/v1/auth/approle/login", json=body
            )
            if answer is not None and answer.status_code == 200:
                token = answer.json()["token"]
                call(books, "read-after-login", pool[(turn + 1) % 2], "GET",
                     f"/v1/secrets/{PATHS[1]}", headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def flood() -> None:
        pool, turn = clients(None, timeout=5), 0
        while not stop.is_set():
            turn += 1
            body = {"role_id": flood_role_id, "secret_id": "wrong-" + secrets.token_hex(8)}
            call(books, "login-flood", pool[turn % 2], "POST", "/v1/auth/approle/login",
                 expect_refusal=True, json=body)  # fmt: skip

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=long_poller, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=f) for f in (writer, login, flood)]
    started = time.monotonic()
    duration = minutes * 60
    rss: list[tuple[float, list[int]]] = []
    for thread in threads:
        thread.daemon = True
        thread.start()
    while time.monotonic() - started < duration:
        sample = [tree_rss(r.process.pid) for r in replicas if r.process is not None]
        rss.append((time.monotonic() - started, sample))
        elapsed = time.monotonic() - started
        with books.lock:
            reads = len(books.done["read"])
        say(f"  {elapsed:6.0f} s: {reads} reads, RSS MiB {[round(s / 2**20) for s in sample]}")
        time.sleep(min(10.0, max(0.0, duration - elapsed)))
    stop.set()
    for thread in threads:
        thread.join(35)
    ended = time.monotonic()
    return summarise(books, rss, started, ended, duration)


def summarise(
    books: Books, rss: list[tuple[float, list[int]]], started: float, ended: float, duration: float
) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind, latencies in sorted(books.latency.items()):
        kinds[kind] = {
            "requests": len(latencies),
            "per_s": round(len(latencies) / (ended - started), 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "errors": dict(books.errors.get(kind, {})),
            "expected_refusals": books.refused.get(kind, 0),
        }
    done = books.done["read"]
    third = duration / 3
    first = sum(1 for t in done if started <= t < started + third)
    last = sum(1 for t in done if started + 2 * third <= t < started + duration)
    warm = [s for s in rss if s[0] >= duration / 5] or rss
    growth = [
        round((warm[-1][1][i] - warm[0][1][i]) / 2**20, 1) for i in range(len(warm[0][1]))
    ] if warm else []  # fmt: skip
    medians = [
        round(statistics.median(s[1][i] for s in rss) / 2**20, 1) for i in range(len(rss[0][1]))
    ]
    return {
        "minutes": round(duration / 60, 2),
        "kinds": kinds,
        "long_polls_woken": books.woke,
        "errors_total": sum(sum(e.values()) for e in books.errors.values()),
        "read_throughput_last_vs_first_third": round(last / first, 3) if first else None,
        "rss_mib_start": [round(v / 2**20, 1) for v in warm[0][1]] if warm else [],
        "rss_mib_end": [round(v / 2**20, 1) for v in warm[-1][1]] if warm else [],
        "rss_growth_mib": growth,
        "rss_samples_mib_median": medians,
    }


def print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"soak: {report['minutes']} min through 2 replicas on a 3-node OpenBao Raft cluster")
    print(f"{'kind':<18}{'requests':>10}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}  errors / refusals")
    for kind, row in report["kinds"].items():
        print(
            f"{kind:<18}{row['requests']:>10}{row['per_s']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"  {row['errors'] or 0} / {row['expected_refusals']}"
        )
    print(f"long-polls woken by a newer version: {report['long_polls_woken']}")
    print(f"errors total: {report['errors_total']}")
    print(
        f"read throughput, last third / first third: {report['read_throughput_last_vs_first_third']}"
    )
    print(f"RSS MiB per replica: {report['rss_mib_start']} -> {report['rss_mib_end']} "
          f"(growth {report['rss_growth_mib']})")  # fmt: skip
    print(f"audit records: {report['audit_records']}; verify: {report['audit_verify']}")


if __name__ == "__main__":
    raise SystemExit(main())
