"""The anchored audit chain: keyed hashes and checkpoints outside the database.

An attacker here can write the database (any row, any column) but cannot read
the data dir's audit key. Every rewrite below must be caught by
``secretsd audit verify``, which runs as a real process against the real
database a real server wrote.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from secretsd.audit import AuditEvent, append_events
from secretsd.audit_anchor import record_hash
from secretsd.db.engine import make_engine
from secretsd.db.migrate import upgrade_schema
from tests.conftest import RunningServer, secretsd_executable


def verify(data_dir: Path, database_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env["SECRETSD_DATABASE_URL"] = database_url
    result = subprocess.run(
        [secretsd_executable(), "audit", "verify", "--data-dir", str(data_dir), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def written(server_factory: Callable[..., RunningServer]) -> tuple[RunningServer, Engine]:
    """A server that wrote 12 audit records (a checkpoint after each batch), then stopped."""
    server = server_factory(audit_checkpoint_interval=0)
    with server.client() as client:
        client.put("/v1/secrets/apps/a", json={"data": {"k": "v"}})
        for _ in range(11):
            assert client.get("/v1/secrets/apps/a").status_code == 200
    server.stop()
    engine = make_engine(server.settings.sqlalchemy_url)
    return server, engine


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM audit_log ORDER BY seq"))
        return [dict(r._mapping) for r in result.all()]


def rewrite_from(engine: Engine, seq: int, change: dict[str, Any], *, key_id: str | None) -> None:
    """What an attacker with database access can do: edit record ``seq`` and recompute
    every later hash (plain sha256, since the key is not theirs) and the head row."""
    records = rows(engine)
    prev = records[seq - 2]["hash"] if seq > 1 else "0" * 64
    with engine.begin() as connection:
        for record in records[seq - 1 :]:
            if record["seq"] == seq:
                record.update(change)
            record["prev_hash"] = prev
            record["key_id"] = record["key_id"] if key_id is None else key_id
            record["hash"] = prev = record_hash(prev, record)
            connection.execute(
                text(
                    "UPDATE audit_log SET outcome = :outcome, path = :path, prev_hash = :prev_hash, "
                    "hash = :hash, key_id = :key_id WHERE seq = :seq"
                ),
                record,
            )
        connection.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def test_an_intact_keyed_chain_verifies_and_its_anchors_are_private(
    written: tuple[RunningServer, Engine],
) -> None:
    server, engine = written
    data_dir = server.settings.data_dir
    code, report = verify(data_dir, server.settings.sqlalchemy_url)
    assert code == 0, report
    assert report["records_checked"] == report["keyed_records"] >= 12
    assert report["checkpoints_checked"] >= 1
    key_file, checkpoints = data_dir / "audit.key", data_dir / "audit-checkpoints.jsonl"
    for path in (key_file, checkpoints):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) == 64
    for record in rows(engine):  # the database never holds the key
        assert key not in json.dumps(record, default=str)


def test_deleting_the_tail_and_updating_the_head_row_is_detected(
    written: tuple[RunningServer, Engine],
) -> None:
    server, engine = written
    records = rows(engine)
    keep = records[-3]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": keep["seq"]})
        connection.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h WHERE id = 1"),
            {"s": keep["seq"], "h": keep["hash"]},
        )
    code, report = verify(server.settings.data_dir, server.settings.sqlalchemy_url)
    assert code == 1  # before: "OK", the head row agreed with the shortened log
    assert "removed from the end" in report["reason"]
    assert report["first_bad_record"] == keep["seq"] + 1


@pytest.mark.parametrize("downgrade", [True, False], ids=["as-sha256", "keeping-key-id"])
def test_rewriting_a_record_and_recomputing_later_hashes_is_detected(
    written: tuple[RunningServer, Engine], downgrade: bool
) -> None:
    server, engine = written
    rewrite_from(engine, 4, {"outcome": "denied"}, key_id="" if downgrade else None)
    code, report = verify(server.settings.data_dir, server.settings.sqlalchemy_url)
    assert code == 1  # before: "OK", the recomputed chain was self-consistent
    assert report["first_bad_record"] == 4


def test_recomputing_the_whole_chain_without_the_key_is_detected(
    written: tuple[RunningServer, Engine],
) -> None:
    server, engine = written
    rewrite_from(engine, 1, {"path": "apps/elsewhere"}, key_id="")
    code, report = verify(server.settings.data_dir, server.settings.sqlalchemy_url)
    assert code == 1
    assert "checkpoint" in report["reason"]


def test_verify_needs_the_key_that_made_the_records(
    written: tuple[RunningServer, Engine], tmp_path: Path
) -> None:
    server, _ = written
    other = tmp_path / "other.key"
    other.write_text("ab" * 32)
    code, report = verify(
        server.settings.data_dir, server.settings.sqlalchemy_url, "--key-file", str(other)
    )
    assert code == 1 and "was not supplied" in report["reason"]


def test_a_chain_from_before_audit_keys_still_verifies_and_is_then_anchored(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'secretsd.db'}"
    engine = make_engine(database_url)
    upgrade_schema(engine)
    old = [AuditEvent(action="read", outcome="allowed", path=f"apps/{i}") for i in range(5)]
    append_events(engine, old)  # the old format: plain sha256, no key
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    code, report = verify(data_dir, database_url)
    assert code == 0 and report["unkeyed_records"] == 5 and report["keyed_records"] == 0

    server = server_factory(database_url=database_url, audit_checkpoint_interval=0)
    with server.client() as client:
        client.put("/v1/secrets/apps/b", json={"data": {"k": "v"}})
    server.stop()
    code, report = verify(server.settings.data_dir, database_url)
    assert code == 0, report
    assert report["unkeyed_records"] == 5 and report["keyed_records"] >= 1

    # Once keyed records follow them, the old ones cannot be rewritten unnoticed either.
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET path = 'apps/x' WHERE seq = 2"))
    code, report = verify(server.settings.data_dir, database_url)
    assert code == 1 and report["first_bad_record"] == 2, report
    engine.dispose()


def test_verify_refuses_a_missing_data_dir_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-dir"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    result = subprocess.run(
        [secretsd_executable(), "audit", "verify", "--data-dir", str(typo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2  # before: 6, "retry later", and an empty database
    assert result.stderr.startswith("Error: the data dir") and "does not exist" in result.stderr
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [secretsd_executable(), "audit", "verify", "--data-dir", str(empty)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "no secretsd database" in result.stderr
    assert list(empty.iterdir()) == []
