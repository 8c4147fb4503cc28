"""Faults under load on real engines: Raft leader killed, replica SIGKILLed, OpenBao frozen,
PostgreSQL connections cut. The books: requests sent, acknowledged, lost (must be 0),
audit records (the chain verifies with ``secretsd audit verify``).

Marker ``faults``; part of the default run, so ``.ci/run`` runs it (needs PostgreSQL).
Each phase prints its figures (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import psutil
import pytest
import sqlalchemy

from tests.conftest import ADMIN_TOKEN
from tests.faults.cluster import BaoCluster, Replica, audit_verify_command
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


def _pg_engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def terminate_backends_of(replica: Replica, url: str) -> int:
    """pg_terminate_backend every PostgreSQL session whose client socket belongs to the
    replica's processes (other users of the shared database are left alone)."""
    assert replica.process is not None
    parent = psutil.Process(replica.process.pid)
    ports = set()
    for process in [parent, *parent.children(recursive=True)]:
        for connection in process.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == 5432:
                ports.add(connection.laddr.port)
    if not ports:
        return 0
    engine = _pg_engine(url)
    try:
        with engine.begin() as connection:
            killed = connection.execute(
                sqlalchemy.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE client_port = ANY(:ports) AND pid <> pg_backend_pid()"
                ),
                {"ports": sorted(ports)},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(killed)


def audit_verify(*replicas: Replica) -> dict[str, object]:
    """``secretsd audit verify`` over the shared database, with every replica's key."""
    result = subprocess.run(
        audit_verify_command(list(replicas)),
        capture_output=True,
        text=True,
        env=replicas[0].env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verdict: dict[str, object] = json.loads(result.stdout)
    return verdict


def audit_counts(url: str) -> dict[str, int]:
    engine = _pg_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT action || ' ' || outcome, count(*) FROM audit_log GROUP BY 1"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(key): int(count) for key, count in rows}


def wait_serving(replica: Replica, timeout: float = 60.0) -> float:
    """Seconds until the replica answers an authenticated read again."""
    started = time.monotonic()
    with replica.client(timeout=5) as client:
        while time.monotonic() - started < timeout:
            try:
                if client.get("/v1/metadata", params={"list": "true"}).status_code in (200, 404):
                    return time.monotonic() - started
            except Exception:
                pass
            time.sleep(0.1)
    raise AssertionError(f"replica {replica.name} did not serve again within {timeout:.0f} s")


def test_no_acknowledged_write_is_lost_through_faults(
    cluster: BaoCluster, replicas: Callable[..., Replica], pg_url: str
) -> None:
    leader = cluster.wait_leader()
    standbys = [node for node in cluster.nodes if node is not leader]
    # Both replicas talk to standbys, which forward to whichever node is active: killing
    # the leader must not take a replica's Vault away (see README "Scale-out").
    a = replicas("a", node=standbys[0].index)
    b = replicas("b", node=standbys[1].index)
    load = Load([a.url, b.url], ADMIN_TOKEN, threads=4, pause=0.03, max_requests=100_000)
    figures: dict[str, object] = {}
    load.start()
    try:
        time.sleep(2)

        # 1. Kill the Raft leader (SIGKILL); a new one is elected; bring the old one back.
        started = time.monotonic()
        cluster.kill(leader)
        new_leader = cluster.wait_leader(not_node=leader)
        figures["raft_failover_s"] = round(time.monotonic() - started, 2)
        cluster.restart(leader)
        figures["old_leader_rejoined_s"] = round(time.monotonic() - started, 2)
        time.sleep(1)

        # 2. SIGKILL replica a (its whole process group, as a container dying); restart it.
        started = time.monotonic()
        a.kill_group()
        time.sleep(1)
        a.start()
        figures["replica_restart_s"] = round(time.monotonic() - started, 2)
        time.sleep(1)

        # 3. Freeze the active OpenBao node (SIGSTOP) for 4 s, then resume it.
        frozen = cluster.wait_leader()
        cluster.freeze(frozen)
        time.sleep(4)
        cluster.thaw(frozen)
        figures["after_freeze_leader"] = cluster.wait_leader().node_id
        time.sleep(1)

        # 4. Cut every PostgreSQL connection of both replicas.
        figures["pg_backends_terminated"] = terminate_backends_of(a, pg_url) + (
            terminate_backends_of(b, pg_url)
        )
        figures["a_serving_after_pg_cut_s"] = round(wait_serving(a), 2)
        figures["b_serving_after_pg_cut_s"] = round(wait_serving(b), 2)
        time.sleep(2)
        assert new_leader is not None
    finally:
        load.stop()

    figures.update(load.summary())
    lost = load.lost(b.url)
    figures["lost"] = len(lost)
    audit = audit_counts(pg_url)
    figures["audit_records"] = sum(audit.values())
    figures["audit_writes_allowed"] = audit.get("write allowed", 0)
    verdict = audit_verify(a, b)
    figures["audit_verify"] = verdict
    print("\nfault suite figures:", json.dumps(figures, indent=2))

    assert load.acked, "no write was acknowledged at all: the load did not run"
    assert lost == [], f"{len(lost)} acknowledged writes are lost"
    assert verdict["ok"] is True
    # Every acknowledged write left an allowed audit record (it is audited before the answer).
    assert audit.get("write allowed", 0) >= len(load.acked)
    # The service recovered: both replicas serve reads and writes now.
    for replica in (a, b):
        with replica.client() as client:
            assert client.put("/v1/secrets/after/ok", json={"data": {"v": "x"}}).status_code == 200


def test_replica_fails_over_when_its_vault_node_dies(
    cluster: BaoCluster, replicas: Callable[..., Replica]
) -> None:
    """SECRETSD_VAULT_FALLBACK_ADDRS: a replica whose node is killed moves to another node
    of the cluster at once; the same replica without the setting answers 503."""
    leader = cluster.wait_leader()
    node = next(n for n in cluster.nodes if n is not leader)
    others = json.dumps([n.addr for n in cluster.nodes if n is not node])
    uncached = {"secretsd_cache_enabled": "false"}  # every read below is a Vault call
    with_fallback = replicas("f", node=node.index, secretsd_vault_fallback_addrs=others, **uncached)
    without = replicas("g", node=node.index, **uncached)
    with with_fallback.client() as f, without.client() as g:
        assert f.put("/v1/secrets/fo/x", json={"data": {"v": "1"}}).status_code == 200
        assert g.get("/v1/secrets/fo/x").status_code == 200
        cluster.kill(node)
        try:
            started = time.monotonic()
            statuses = []
            for index in range(10):
                statuses.append(
                    f.put("/v1/secrets/fo/x", json={"data": {"v": str(index)}}).status_code
                )
                statuses.append(f.get("/v1/secrets/fo/x").status_code)
            elapsed = time.monotonic() - started
            control = g.get("/v1/secrets/fo/x").status_code
        finally:
            cluster.restart(node)
    print(f"\nfailover: 20 calls after the node died in {elapsed:.2f} s: {statuses}; "
          f"without fallbacks: {control}")  # fmt: skip
    assert statuses == [200] * 20
    assert control == 503
