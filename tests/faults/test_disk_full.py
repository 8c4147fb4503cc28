"""A full disk under a replica's data directory and audit mirror (issue 8, holes 3 and 4),
under load: every request answers (200, or 503 while the disk is full; never a hang),
``/healthz`` answers, the replica recovers by itself once space returns, no acknowledged
write is lost and the audit chain verifies.

Needs root (it mounts a 4 MiB tmpfs); ``.ci/run`` runs as root, and a skip fails CI.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, fill
from tests.faults.cluster import BaoCluster, Replica
from tests.faults.load import Load
from tests.faults.test_faults import audit_verify

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


def test_full_disk_fails_closed_and_recovers(
    cluster: BaoCluster, replicas: Callable[..., Replica], tmpfs: Callable[[str], Path]
) -> None:
    small_disk = tmpfs("4m")
    replica = replicas(
        "full",
        node=cluster.wait_leader().index,
        workers=2,
        secretsd_data_dir=str(small_disk / "data"),
        secretsd_audit_file=str(small_disk / "audit.jsonl"),
    )
    load = Load([replica.url], ADMIN_TOKEN, threads=3, pause=0.05, max_requests=100_000, timeout=10)
    figures: dict[str, object] = {}
    load.start()
    try:
        time.sleep(2)
        filler = fill(small_disk)
        time.sleep(5)
        with httpx.Client(base_url=replica.url, timeout=5) as probe:
            for route in ("healthz", "readyz"):
                try:
                    figures[f"{route}_while_full"] = probe.get(f"/{route}").status_code
                except httpx.HTTPError as error:
                    figures[f"{route}_while_full"] = type(error).__name__
        filler.unlink()
        started = time.monotonic()
        with replica.client(timeout=10) as client:
            while time.monotonic() - started < 30:
                with contextlib.suppress(httpx.HTTPError):
                    if (
                        client.put("/v1/secrets/full/after", json={"data": {"v": "x"}}).status_code
                        == 200
                    ):
                        break
                time.sleep(0.2)
        figures["recovered_after_space_returned_s"] = round(time.monotonic() - started, 2)
        time.sleep(2)
    finally:
        load.stop()
    figures.update(load.summary())
    lost = load.lost(replica.url)
    figures["lost"] = len(lost)
    verdict = audit_verify(replica)
    figures["audit_verify"] = verdict
    print("\nfull disk figures:", json.dumps(figures, indent=2))

    outcomes = load.outcomes
    assert outcomes["write timeout"] == 0 and outcomes["read timeout"] == 0, "requests hung"
    assert set(outcomes) <= {"write 200", "write 503", "read 200", "read 404", "read 503"}
    assert figures["healthz_while_full"] == 200
    assert figures["recovered_after_space_returned_s"] < 30
    assert lost == []
    assert verdict["ok"] is True
