"""Fixtures for the fault suite: one 3-node OpenBao Raft cluster per module, and replicas."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, postgres_schema_url
from tests.faults.cluster import BaoCluster, Replica


@pytest.fixture(scope="module")
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


@pytest.fixture
def replicas(
    tmp_path: Path, cluster: BaoCluster, pg_url: str
) -> Iterator[Callable[..., Replica]]:
    """``make(name, node=i, **env)``: a started ``secretsd serve`` replica on this test's schema."""
    started: list[Replica] = []
    prefix = f"proof-{uuid.uuid4().hex[:8]}"

    def make(name: str, node: int = 0, workers: int = 1, **env: Any) -> Replica:
        replica = Replica(
            name=name,
            root=tmp_path / name,
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

    yield make
    for replica in started:
        replica.stop()


def value() -> str:
    return "v-" + secrets.token_hex(12)
