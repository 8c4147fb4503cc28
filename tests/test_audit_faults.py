"""Audit under faults and attack: full disks, poisoned records, hostile text, a locked database.

The full-disk tests mount a real, small tmpfs (they need root, as CI has) and
fill it, so the mirror write fails with a real ENOSPC.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, text

from secretsd.audit import AuditEvent, AuditLog, verify_chain
from secretsd.db.engine import make_engine
from secretsd.db.migrate import upgrade_schema
from secretsd.errors import AuditUnavailable
from tests.conftest import RunningServer, fill


@pytest.fixture
def small_fs(tmpfs: Callable[[str], Path]) -> Path:
    """A real 1 MiB tmpfs (tests/conftest.py), unmounted afterwards."""
    return tmpfs("1m")


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(url: str = "") -> Engine:
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = make_engine(url or f"sqlite:///{tmp_path / 'audit.db'}")
        upgrade_schema(engine)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def stored(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT * FROM audit_log ORDER BY seq")).all())


# -- a full disk under the mirror ------------------------------------------------


def test_full_disk_under_the_mirror_fails_closed_and_recovers(
    server_factory: Callable[..., RunningServer], small_fs: Path
) -> None:
    mirror = small_fs / "audit.jsonl"
    server = server_factory(audit_file=str(mirror))
    with server.client() as client:
        assert client.put("/v1/secrets/apps/a", json={"data": {"k": "v"}}).status_code == 200
        assert client.get("/v1/secrets/apps/a").status_code == 200
        assert stat.S_IMODE(mirror.stat().st_mode) == 0o600

        filler = fill(small_fs)
        # The mirror's last page may still have room for a few records.
        for _ in range(100):
            started = time.monotonic()
            refused = client.get("/v1/secrets/apps/a")  # before the fix: no answer, ever
            if refused.status_code != 200:
                break
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "audit_unavailable"
        assert time.monotonic() - started < 5
        assert client.get("/v1/secrets/apps/a").status_code == 503  # still closed, still alive
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["audit"]["ok"] is False
        assert "No space left" in ready.json()["checks"]["audit"]["detail"]

        filler.unlink()
        deadline = time.monotonic() + 5  # recovers by itself, without a request
        while httpx.get(f"{server.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "audit did not recover when space returned"
            time.sleep(0.1)
        assert client.get("/v1/secrets/apps/a").status_code == 200

    # The mirror holds every record the database holds, whole and in order.
    lines = mirror.read_bytes().splitlines()
    seqs = [orjson.loads(line)["seq"] for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == len(stored(server.state.engine))


# -- one bad record never fails its neighbours -------------------------------------


def poisoned() -> AuditEvent:
    return AuditEvent(
        action="read",
        outcome="denied",
        path="apps/\x1b[2J\x00x" + "y" * 2000,
        version=99999999999999999999,
        display_name="\ud800 lone surrogate",
        client="\x07" * 100,
        detail="\x1b]0;pwned\x07",
    )


def normal(i: int) -> AuditEvent:
    return AuditEvent(action="read", outcome="allowed", path=f"apps/n{i}", version=1)


async def write_together(log: AuditLog, events: list[AuditEvent]) -> list[BaseException | None]:
    await log.start()
    try:
        results = await asyncio.gather(*(log.record(e) for e in events), return_exceptions=True)
    finally:
        await log.stop()
    return [r if isinstance(r, BaseException) else None for r in results]


def test_a_poisoned_record_is_stored_sanitised_and_fails_no_neighbour(
    migrated: Callable[..., Engine], database_url: str
) -> None:
    engine = migrated(database_url)
    events = [normal(i) for i in range(40)]
    events.insert(17, poisoned())
    results = asyncio.run(write_together(AuditLog(engine), events))
    assert results == [None] * 41  # before: all 41 refused (the batch failed to serialise)
    rows = stored(engine)
    assert len(rows) == 41
    bad = next(r for r in rows if r.outcome == "denied")
    assert bad.version is None and bad.detail.startswith("version 99999999999999999999 not stored")
    for value in (bad.path, bad.display_name, bad.client, bad.detail):
        assert value.isprintable()
    assert bad.path.startswith("apps/\\x1b[2J\\x00x") and len(bad.path) == 600
    assert bad.display_name.startswith("\\ud800")
    assert verify_chain(engine) == (41, None)


def test_a_record_the_database_refuses_fails_alone(migrated: Callable[..., Engine]) -> None:
    engine = migrated()
    with engine.begin() as connection:  # a real database refusing one particular record
        connection.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log "
                "WHEN NEW.path = 'apps/poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    events = [normal(i) for i in range(20)]
    events.insert(5, AuditEvent(action="read", outcome="allowed", path="apps/poison"))
    results = asyncio.run(write_together(AuditLog(engine), events))
    assert results == [None] * 21  # before: the whole batch got 503
    rows = stored(engine)
    assert [r.path for r in rows].count("apps/poison") == 0
    stub = next(r for r in rows if r.path == "")
    assert "record refused by the database (IntegrityError)" in stub.detail
    assert verify_chain(engine) == (21, None)

    with engine.begin() as connection:  # now even the stub is refused: only it fails
        connection.execute(text("DROP TRIGGER refuse_poison"))
        connection.execute(
            text(
                "CREATE TRIGGER refuse_read BEFORE INSERT ON audit_log "
                "WHEN NEW.path = 'apps/poison' OR NEW.path = '' BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        )
    results = asyncio.run(write_together(AuditLog(engine), events))
    assert [type(r) for r in results] == [type(None)] * 5 + [AuditUnavailable] + [type(None)] * 15


# -- hostile text ----------------------------------------------------------------


def test_control_characters_from_unauthenticated_input_are_escaped(
    server: RunningServer, cli: Any
) -> None:
    hostile = "x\x1b[2J\x1b]0;owned\x07"
    with server.client() as anonymous:
        answer = anonymous.post("/v1/auth/kubernetes/login", json={"role": hostile, "jwt": "a.b.c"})
        assert answer.status_code in (400, 401)
    with server.state.engine.connect() as connection:
        paths = [r[0] for r in connection.execute(text("SELECT path FROM audit_log")).all()]
    assert "sys/kubernetes/x\\x1b[2J\\x1b]0;owned\\x07" in paths
    assert not any("\x1b" in p for p in paths)

    # Records stored raw by an older version are escaped when listed.
    with server.state.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET detail = :d"), {"d": "old\x1b[31mred"})
    listed = cli("audit", "list").stdout.decode()
    assert "\x1b" not in listed and "\x07" not in listed
    assert "x\\x1b[2J" in listed


# -- readiness ---------------------------------------------------------------------


def test_readyz_is_not_ready_while_the_database_is_locked(server: RunningServer) -> None:
    """SQLite: another process holds the write lock every audit write needs."""
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    database = server.settings.sqlalchemy_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = time.monotonic()
        answer = httpx.get(f"{server.url}/readyz", timeout=10)
        assert answer.status_code == 503  # before: 200 (SELECT 1 needs no lock)
        assert answer.json()["checks"]["database"]["ok"] is False
        assert time.monotonic() - started < 4
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


@pytest.mark.postgres
def test_readyz_is_not_ready_while_the_audit_head_is_locked_on_postgresql(
    server_factory: Callable[..., RunningServer],
) -> None:
    from tests.conftest import postgres_schema_url

    with postgres_schema_url() as url:
        server = server_factory(database_url=url)
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as holder:
                holder.execute(text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"))
                answer = httpx.get(f"{server.url}/readyz", timeout=10)
                assert answer.status_code == 503
                assert answer.json()["checks"]["database"]["ok"] is False
                holder.rollback()
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        finally:
            engine.dispose()
        server.stop()


def test_an_attackers_unstorable_denials_fail_none_of_the_normal_reads(
    server: RunningServer,
) -> None:
    """Issue 8, item 5: a zero-policy token sends an out-of-range version while others read."""
    from concurrent.futures import ThreadPoolExecutor

    issued = server.state.tokens.create(policies=[], display_name="attacker")
    with server.client() as admin:
        admin.put("/v1/secrets/apps/normal", json={"data": {"k": "v"}})

    def read(i: int) -> int:
        with server.client() as client:
            return client.get("/v1/secrets/apps/normal").status_code

    def attack(i: int) -> int:
        with server.client(token=issued.token) as client:
            return client.get("/v1/secrets/apps/x?version=99999999999999999999").status_code

    with ThreadPoolExecutor(12) as pool:
        attacks = [pool.submit(attack, i) for i in range(30)]
        reads = list(pool.map(read, range(120)))
    assert reads == [200] * 120  # before: some got 503 when batched with an attack
    assert all(a.result() in (400, 403, 404, 422) for a in attacks)
    with server.state.engine.connect() as connection:
        audited = connection.execute(
            text("SELECT count(*) FROM audit_log WHERE path = 'apps/normal' AND action = 'read'")
        ).scalar_one()
    assert audited == 120
