"""Fixtures for the fault suite: one 3-node OpenBao Raft cluster per session (tests that
kill or freeze a node bring it back), and ``secretsd serve`` replicas per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, postgres_schema_url
from tests.faults.cluster import BaoCluster, Replica


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoCluster]:
    running = BaoCluster(tmp_path_factory.mktemp("raft")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@contextlib.contextmanager
def replica_factory(
    root: Path, cluster: BaoCluster, pg_url: str
) -> Iterator[Callable[..., Replica]]:
    """``make(name, node=i, workers=n, **env)``: a started ``secretsd serve`` replica on
    ``pg_url`` talking to node ``i``; every replica is stopped on the way out."""
    started: list[Replica] = []
    prefix = f"proof-{uuid.uuid4().hex[:8]}"

    def make(name: str, node: int = 0, workers: int = 1, **env: Any) -> Replica:
        replica = Replica(
            name=name,
            root=root / name,
            database_url=pg_url,
            vault_addr=cluster.nodes[node].addr,
            vault_token=cluster.root_token,
            admin_token=ADMIN_TOKEN,
            vault_prefix=prefix,
            workers=workers,
            extra_env={k.upper(): str(v) for k, v in env.items()},
        )
        started.append(replica)
        return replica.start()

    try:
        yield make
    finally:
        for replica in started:
            replica.stop()


@pytest.fixture
def replicas(tmp_path: Path, cluster: BaoCluster, pg_url: str) -> Iterator[Callable[..., Replica]]:
    """Replicas on this test's own PostgreSQL schema."""
    with replica_factory(tmp_path, cluster, pg_url) as make:
        yield make
