"""Vault frozen (SIGSTOP) and resumed: stale reads at once from any worker, fast failures,
and writes whose outcome is unknown said to be so."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from secretsd import Client, OutcomeUnknown
from tests.conftest import (
    Bao,
    RunningServer,
    make_settings,
    start_bao_dev,
    start_server,
    stop_process,
)

TIMEOUT = 4.0  # the Vault timeout: a frozen Vault costs this much, once
#: "At once": well under the Vault timeout, with room for a loaded CI machine (a request
#: that waited on the frozen Vault takes TIMEOUT; CI once saw 0.6 s for an immediate one).
FAST = TIMEOUT / 3


@pytest.fixture
def own_bao() -> Iterator[Bao]:
    server = start_bao_dev()
    yield server
    os.kill(server.process.pid, signal.SIGCONT)
    stop_process(server.process)


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def stored_rows(server: RunningServer) -> int:
    with server.state.engine.connect() as connection:
        query = sqlalchemy.text("SELECT COUNT(*) FROM last_known_good")
        return int(connection.execute(query).scalar())


def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def start_pair(tmp_path: Path, bao: Bao, vault_prefix: str) -> tuple[RunningServer, RunningServer]:
    """Two workers of one deployment: one database, one Vault, separate memories."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    extra = {"cache_ttl": 0.2, "vault_timeout": TIMEOUT, "vault_probe_interval": 0.2}
    a = start_server(make_settings(tmp_path / "a", bao, vault_prefix, database, **extra))
    b = start_server(make_settings(tmp_path / "b", bao, vault_prefix, database, **extra))
    return a, b


def test_stale_reads_are_immediate_and_do_not_depend_on_the_worker(
    tmp_path: Path, own_bao: Bao, vault_prefix: str
) -> None:
    a, b = start_pair(tmp_path, own_bao, vault_prefix)
    try:
        with a.client() as via_a, b.client() as via_b:
            via_a.put("/v1/secrets/app/db", json={"data": {"password": "last-known-good-1"}})
            via_b.get("/v1/secrets/app/warm")  # b knows the admin token, not the secret
            assert via_a.get("/v1/secrets/app/db").status_code == 200
            eventually(lambda: stored_rows(a) == 1)  # stored off the request path
            time.sleep(0.3)  # a's cache entry is now due for revalidation

            os.kill(own_bao.process.pid, signal.SIGSTOP)
            first, _ = timed(lambda: via_a.get("/v1/secrets/app/db"))
            assert first.status_code == 200 and first.headers["x-secretsd-stale"] == "true"
            for _ in range(3):  # Vault is known down: no more waiting
                again, took = timed(lambda: via_a.get("/v1/secrets/app/db"))
                assert again.status_code == 200 and again.headers["x-secretsd-stale"] == "true"
                assert took < FAST

            # Worker b never read it; it serves the shared last-known-good copy, at once:
            # a told b through the change feed (polled every 0.1 s) that Vault is down.
            time.sleep(0.3)
            served, took = timed(lambda: via_b.get("/v1/secrets/app/db"))
            assert served.status_code == 200, served.text
            assert took < FAST
            assert served.headers["x-secretsd-stale"] == "true"
            assert served.json()["data"] == {"password": "last-known-good-1"}
            served, took = timed(lambda: via_b.get("/v1/secrets/app/db"))
            assert served.status_code == 200 and took < FAST

            # Known down: uncached reads and writes fail at once, clearly.
            missing, took = timed(lambda: via_a.get("/v1/secrets/app/never-read"))
            assert missing.status_code == 503 and took < FAST
            assert missing.json()["error"]["code"] == "vault_unavailable"
            refused, took = timed(
                lambda: via_a.put("/v1/secrets/app/other", json={"data": {"k": "v"}})
            )
            assert refused.status_code == 503 and took < FAST
            assert "fails fast" in refused.json()["error"]["message"]

            os.kill(own_bao.process.pid, signal.SIGCONT)
            eventually(lambda: "x-secretsd-stale" not in via_a.get("/v1/secrets/app/db").headers)
            eventually(lambda: via_b.get("/v1/secrets/app/never-read").status_code == 404)
    finally:
        os.kill(own_bao.process.pid, signal.SIGCONT)
        a.stop()
        b.stop()


def test_the_shared_copy_is_sealed_and_forgotten_on_delete(
    tmp_path: Path, own_bao: Bao, vault_prefix: str
) -> None:
    a, b = start_pair(tmp_path, own_bao, vault_prefix)
    try:
        with a.client() as via_a, b.client() as via_b:
            via_a.put("/v1/secrets/app/gone", json={"data": {"password": "plaintext-canary-77"}})
            via_a.get("/v1/secrets/app/gone")
            eventually(lambda: stored_rows(a) == 1)
            raw = Path(str(a.state.engine.url.database)).read_bytes()
            assert b"plaintext-canary-77" not in raw
            with a.state.engine.connect() as connection:
                sealed = connection.execute(
                    sqlalchemy.text("SELECT sealed FROM last_known_good")
                ).scalar()
            assert b"plaintext-canary-77" not in bytes(sealed)
            # Deleted through secretsd: no worker may serve it stale afterwards.
            assert via_a.delete("/v1/secrets/app/gone").status_code == 204
            assert stored_rows(a) == 0
            via_b.get("/v1/secrets/app/warm")
            os.kill(own_bao.process.pid, signal.SIGSTOP)
            answer = via_b.get("/v1/secrets/app/gone")
            assert answer.status_code == 503
    finally:
        os.kill(own_bao.process.pid, signal.SIGCONT)
        a.stop()
        b.stop()


def test_a_write_without_an_answer_is_outcome_unknown(
    tmp_path: Path, own_bao: Bao, vault_prefix: str
) -> None:
    settings = make_settings(
        tmp_path, own_bao, vault_prefix, vault_timeout=1.0, vault_probe_interval=0.2
    )
    server = start_server(settings)
    try:
        with server.client() as admin:
            assert admin.put("/v1/secrets/app/w", json={"data": {"k": "v1"}}).status_code == 200
            os.kill(own_bao.process.pid, signal.SIGSTOP)
            with (
                Client(server.url, server.token) as sdk,
                pytest.raises(OutcomeUnknown, match="may or may not have been applied"),
            ):
                sdk.put("app/unknown", {"k": "v"})  # the SDK maps the code to its class
            answer = admin.put("/v1/secrets/app/w", json={"data": {"k": "v2"}})
            # The breaker is open after the first unanswered write: this one was never sent.
            assert answer.status_code == 503
            os.kill(own_bao.process.pid, signal.SIGCONT)
            eventually(lambda: admin.get("/v1/metadata/app/w").status_code == 200)
            # The client checks what landed, then writes with check-and-set.
            current = admin.get("/v1/metadata/app/w").json()["current_version"]
            retry = admin.put("/v1/secrets/app/w", json={"data": {"k": "v2"}, "cas": current})
            assert retry.status_code == 200
            assert retry.json()["version"] == current + 1
    finally:
        os.kill(own_bao.process.pid, signal.SIGCONT)
        server.stop()


def test_the_sealing_key_is_never_served(
    server: RunningServer, bao: Bao, vault_prefix: str
) -> None:
    """The key lives under the reserved ``sys/`` subtree: no route reads or indexes it."""
    import hashlib

    from secretsd.server.stale_store import KEY_PATH

    stored = httpx.get(
        f"{bao.addr}/v1/secret/data/{vault_prefix}/{KEY_PATH}",
        headers={"X-Vault-Token": bao.root_token},
    ).json()["data"]["data"]["key"]
    digest = hashlib.sha256(stored.encode()).hexdigest()
    with server.client() as admin:
        admin.put("/v1/secrets/app/x", json={"data": {"k": "v"}})
        assert admin.get(f"/v1/secrets/{KEY_PATH}").status_code == 400
        assert admin.get(f"/v1/metadata/{KEY_PATH}").status_code == 400
        resolved = admin.post("/v1/resolve", json={"refs": [f"secretsd://{KEY_PATH}#key"]})
        assert "error" in resolved.json()["results"][0]
        assert "sys/" not in admin.get("/v1/metadata", params={"list": "true"}).json()["keys"]
        found = admin.post("/v1/values/hash-lookup", json={"prefixes": [digest[:5]]}).json()
        assert digest not in found["hashes"]


def test_rows_read_together_are_stored_together_and_each_served(
    tmp_path: Path, own_bao: Bao, vault_prefix: str
) -> None:
    """One batch resolve stores its secrets' rows in one batch; each is served stale intact."""
    a, b = start_pair(tmp_path, own_bao, vault_prefix)
    values = {f"app/batch{n}": f"last-known-good-batch-{n}" for n in range(5)}
    try:
        with a.client() as via_a, b.client() as via_b:
            for path, value in values.items():
                assert via_a.put(f"/v1/secrets/{path}", json={"data": {"v": value}}).is_success
            refs = [f"secretsd://{path}#v" for path in values]
            answer = via_a.post("/v1/resolve", json={"refs": refs})
            assert [r["value"] for r in answer.json()["results"]] == list(values.values())
            eventually(lambda: stored_rows(a) == len(values))
            via_b.get("/v1/secrets/app/warm")
            os.kill(own_bao.process.pid, signal.SIGSTOP)
            # A read racing the stop may still get Vault's answer (fresh, cached for 0.2 s):
            # wait for the first one served stale, which only a stopped Vault gives.
            first = f"/v1/secrets/{next(iter(values))}"
            eventually(lambda: via_b.get(first).headers.get("x-secretsd-stale") == "true")
            for path, value in values.items():
                served = via_b.get(f"/v1/secrets/{path}")
                assert served.status_code == 200 and served.headers["x-secretsd-stale"] == "true"
                assert served.json()["data"] == {"v": value}
    finally:
        os.kill(own_bao.process.pid, signal.SIGCONT)
        a.stop()
        b.stop()
