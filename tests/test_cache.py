"""Read cache coherence: writes through secretsd, writes made in Vault, other replicas, Vault down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Bao, make_settings, start_bao_dev, start_server, stop_process


def eventually(check: Any, timeout: float = 3.0) -> float:
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_reads_are_served_from_cache_and_writes_invalidate(server_factory: Any) -> None:
    server = server_factory(cache_ttl=30)
    with server.client() as client:
        client.put("/v1/secrets/c", json={"data": {"k": "1"}})
        client.get("/v1/secrets/c")
        polls = server.state.metrics.vault_latency.labels("reading")._sum.get()
        for _ in range(20):
            assert client.get("/v1/secrets/c").json()["data"] == {"k": "1"}
        assert server.state.metrics.vault_latency.labels("reading")._sum.get() == polls
        client.put("/v1/secrets/c", json={"data": {"k": "2"}})
        assert client.get("/v1/secrets/c").json()["data"] == {"k": "2"}


def test_writes_made_directly_in_vault_show_up_after_the_ttl(
    server_factory: Any, bao: Bao, vault_prefix: str
) -> None:
    server = server_factory(cache_ttl=0.3)
    with server.client() as client:
        client.put("/v1/secrets/ext", json={"data": {"k": "1"}})
        assert client.get("/v1/secrets/ext").json()["version"] == 1
        httpx.post(
            f"{bao.addr}/v1/secret/data/{vault_prefix}/ext",
            headers={"X-Vault-Token": bao.root_token},
            json={"data": {"k": "outside"}},
        ).raise_for_status()
        waited = eventually(lambda: client.get("/v1/secrets/ext").json()["version"] == 2)
        assert waited < 1.5
        assert client.get("/v1/secrets/ext").json()["data"] == {"k": "outside"}


def test_a_write_through_one_replica_reaches_the_others_cache(
    tmp_path: Path, bao: Bao, vault_prefix: str, database_url: str
) -> None:
    settings_a = make_settings(tmp_path / "a", bao, vault_prefix, database_url, cache_ttl=60)
    settings_b = make_settings(tmp_path / "b", bao, vault_prefix, database_url, cache_ttl=60)
    a, b = start_server(settings_a), start_server(settings_b)
    try:
        with a.client() as via_a, b.client() as via_b:
            via_a.put("/v1/secrets/shared/db", json={"data": {"password": "v1"}})
            assert via_b.get("/v1/secrets/shared/db").json()["data"]["password"] == "v1"
            via_a.put("/v1/secrets/shared/db", json={"data": {"password": "v2"}})
            # b cached v1 for 60 s; the change feed must tell it within a poll interval.
            waited = eventually(
                lambda: via_b.get("/v1/secrets/shared/db").json()["data"]["password"] == "v2"
            )
            assert waited < 1.0
    finally:
        a.stop()
        b.stop()


def test_vault_down_serves_cached_reads_as_stale_and_fails_writes(
    tmp_path: Path, vault_prefix: str
) -> None:
    own = start_bao_dev()
    settings = make_settings(tmp_path, own, vault_prefix, cache_ttl=0.2, vault_timeout=1)
    server = start_server(settings)
    try:
        with server.client() as client:
            client.put("/v1/secrets/s", json={"data": {"k": "v"}})
            assert client.get("/v1/secrets/s").status_code == 200
            stop_process(own.process)
            time.sleep(0.3)
            stale = client.get("/v1/secrets/s")
            assert stale.status_code == 200, stale.text
            assert stale.json()["data"] == {"k": "v"}
            assert stale.headers["x-secretsd-stale"] == "true"
            write = client.put("/v1/secrets/s", json={"data": {"k": "new"}})
            assert write.status_code == 503
            assert write.json()["error"]["code"] == "vault_unavailable"
            uncached = client.get("/v1/secrets/never-read")
            assert uncached.status_code == 503
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["vault"]["ok"] is False
    finally:
        server.stop()
        stop_process(own.process)
