"""The audit chain on SQLite and PostgreSQL: appends, concurrent writers, tamper detection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from secretsd.audit import AuditEvent, append_events, verify_chain
from secretsd.db.engine import make_engine
from secretsd.db.migrate import upgrade_schema


@pytest.fixture
def migrated() -> Iterator[Callable[[str], Engine]]:
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        engines.append(engine)
        upgrade_schema(engine)
        upgrade_schema(engine)  # idempotent
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def events(n: int, who: str = "acc1") -> list[AuditEvent]:
    return [
        AuditEvent(action="read", outcome="allowed", path=f"apps/{i}", version=i, identity=who)
        for i in range(n)
    ]


def test_chain_appends_and_verifies(database_url: str, migrated: Callable[[str], Engine]) -> None:
    engine = migrated(database_url)
    assert verify_chain(engine) == (0, None)
    append_events(engine, events(3))
    append_events(engine, events(2))
    assert verify_chain(engine) == (5, None)


def test_concurrent_writers_keep_one_chain(
    database_url: str, migrated: Callable[[str], Engine]
) -> None:
    engine = migrated(database_url)
    engines = [migrated(database_url) for _ in range(4)]

    def write(e: Engine, who: str) -> None:
        for _ in range(15):
            append_events(e, events(4, who))

    threads = [threading.Thread(target=write, args=(e, f"w{i}")) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checked, problem = verify_chain(engine)
    assert problem is None
    assert checked == 4 * 15 * 4


def test_tampering_is_detected_and_located(
    database_url: str, migrated: Callable[[str], Engine]
) -> None:
    engine = migrated(database_url)
    append_events(engine, events(6))
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3"))
    checked, problem = verify_chain(engine)
    assert problem is not None and problem.seq == 3 and "modified" in problem.reason
    assert checked == 2

    engine2 = migrated(database_url.replace("secretsd.db", "second.db"))
    if engine2.url == engine.url:  # PostgreSQL: one schema per test, reuse it freshly
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log"))
            connection.execute(
                text("UPDATE audit_head SET last_seq = 0, last_hash = :h"), {"h": "0" * 64}
            )
    append_events(engine2, events(5))
    with engine2.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    _, problem = verify_chain(engine2)
    assert problem is not None and problem.seq == 2 and "missing" in problem.reason


def test_reordering_and_truncation_are_detected(
    database_url: str, migrated: Callable[[str], Engine]
) -> None:
    engine = migrated(database_url)
    append_events(engine, events(4))
    with engine.begin() as connection:
        # Swap the contents of records 2 and 3 (keeping seq numbers in place).
        rows = {
            r.seq: r
            for r in connection.execute(text("SELECT * FROM audit_log WHERE seq IN (2, 3)")).all()
        }
        for seq, other in ((2, 3), (3, 2)):
            source = rows[other]
            connection.execute(
                text(
                    "UPDATE audit_log SET path = :path, version = :version, prev_hash = :prev, "
                    "hash = :hash WHERE seq = :seq"
                ),
                {
                    "path": source.path,
                    "version": source.version,
                    "prev": source.prev_hash,
                    "hash": source.hash,
                    "seq": seq,
                },
            )
    _, problem = verify_chain(engine)
    assert problem is not None and problem.seq == 2

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))
        connection.execute(
            text("UPDATE audit_head SET last_seq = 0, last_hash = :h"), {"h": "0" * 64}
        )
    append_events(engine, events(4))
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 4"))
    checked, problem = verify_chain(engine)
    assert checked == 3
    assert problem is not None and problem.seq == 4 and "removed from the end" in problem.reason
