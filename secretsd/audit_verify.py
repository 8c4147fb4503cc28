"""``audit verify``: walk the chain, check every hash, key and checkpoint.

Kept apart from the writer (``secretsd.audit``) because it runs offline, from
the CLI, with the keys and checkpoint files it is given; it never writes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, inspect, literal, select

from secretsd.audit_anchor import (
    CHAINED_FIELDS,
    GENESIS_HASH,
    AuditKey,
    Checkpoint,
    checkpoint_mac,
    record_hash,
)
from secretsd.db.engine import database_errors
from secretsd.db.models import AuditHead, AuditRecord

__all__ = ["ChainProblem", "ChainReport", "verify_audit", "verify_chain"]

_AUDIT = AuditRecord.__table__
_COLUMNS = (*CHAINED_FIELDS, "prev_hash", "hash", "key_id")


@dataclass(frozen=True)
class ChainProblem:
    """The first place where the stored chain stops being consistent."""

    seq: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_audit`` checked and the first problem, if any."""

    checked: int
    keyed: int
    unkeyed: int
    checkpoints: int
    problem: ChainProblem | None


def verify_chain(
    engine: Engine,
    batch: int = 5000,
    *,
    keys: Iterable[AuditKey] = (),
    checkpoints: Iterable[Checkpoint] = (),
) -> tuple[int, ChainProblem | None]:
    """(records checked, first problem or None): see :func:`verify_audit`."""
    report = verify_audit(engine, keys=keys, checkpoints=checkpoints, batch=batch)
    return report.checked, report.problem


def verify_audit(
    engine: Engine,
    *,
    keys: Iterable[AuditKey] = (),
    checkpoints: Iterable[Checkpoint] = (),
    batch: int = 5000,
) -> ChainReport:
    """Walk the whole chain with the given keys and checkpoints.

    Detects an edited record (its hash no longer matches), a removed record
    (a gap in ``seq`` or a ``prev_hash`` that names another record), reordered
    records, a cut-off tail (the head row, or any checkpoint, names a later
    record than the last one stored), a chain recomputed without the key
    (keyed hashes and checkpoints no longer match) and a downgrade (an
    unkeyed record after a keyed one). A record keyed with a key that was not
    supplied cannot be vouched for, so it is a problem too.
    """
    by_id = {key.key_id: key for key in keys}
    expected, problem = _checked_checkpoints(checkpoints, by_id)
    walk = _Walk(by_id, expected)
    if problem is not None:
        return walk.report(problem, len(expected))
    with database_errors(engine), engine.connect() as connection:
        # A database not yet migrated to keyed records has no key_id: all are unkeyed.
        present = {column["name"] for column in inspect(connection).get_columns("audit_log")}
        columns = [
            _AUDIT.c[name] if name in present else literal("").label(name) for name in _COLUMNS
        ]
        last_seq = 0
        while True:
            records = connection.execute(
                select(*columns).where(_AUDIT.c.seq > last_seq).order_by(_AUDIT.c.seq).limit(batch)
            ).all()
            if not records:
                break
            for record in records:
                problem = walk.step(dict(record._mapping))
                if problem is not None:
                    return walk.report(problem, len(expected))
            last_seq = records[-1].seq
        head = connection.execute(
            select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)
        ).one()
    problem = walk.finish(int(head.last_seq), str(head.last_hash))
    return walk.report(problem, len(expected))


def _checked_checkpoints(
    checkpoints: Iterable[Checkpoint], keys: Mapping[str, AuditKey]
) -> tuple[dict[int, Checkpoint], ChainProblem | None]:
    expected: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        key = keys.get(checkpoint.key_id)
        where = f"the checkpoint on line {checkpoint.line} (record {checkpoint.seq})"
        if key is None:
            return expected, ChainProblem(
                checkpoint.seq,
                f"{where} is signed with audit key {checkpoint.key_id}, which was not "
                "supplied (--key-file)",
            )
        mac = checkpoint_mac(key, checkpoint.seq, checkpoint.hash, checkpoint.time)
        if not hmac.compare_digest(mac, checkpoint.mac):
            return expected, ChainProblem(checkpoint.seq, f"{where} was altered")
        earlier = expected.get(checkpoint.seq)
        if earlier is not None and earlier.hash != checkpoint.hash:
            return expected, ChainProblem(
                checkpoint.seq,
                f"checkpoints on lines {earlier.line} and {checkpoint.line} disagree about "
                f"record {checkpoint.seq} (two chains were written)",
            )
        expected[checkpoint.seq] = checkpoint
    return expected, None


class _Walk:
    """The state of one pass over the records, in ``seq`` order."""

    def __init__(self, keys: Mapping[str, AuditKey], expected: Mapping[int, Checkpoint]) -> None:
        self.keys = keys
        self.expected = expected
        self.seq = 0
        self.prev = GENESIS_HASH
        self.keyed = 0
        self.unkeyed = 0

    def step(self, record: Mapping[str, object]) -> ChainProblem | None:
        seq = int(record["seq"])  # type: ignore[call-overload]
        want = self.seq + 1
        if seq != want:
            return ChainProblem(want, f"record {want} is missing (next stored record is {seq})")
        if record["prev_hash"] != self.prev:
            return ChainProblem(
                seq,
                f"record {seq} does not follow record {seq - 1} "
                "(removed, reordered or replaced records)",
            )
        key_id = str(record["key_id"] or "")
        key: AuditKey | None = None
        if key_id:
            key = self.keys.get(key_id)
            if key is None:
                return ChainProblem(
                    seq,
                    f"record {seq} is hashed with audit key {key_id}, which was not supplied "
                    "(--key-file; each replica's data dir holds its audit.key)",
                )
        elif self.keyed:
            return ChainProblem(
                seq,
                f"record {seq} has an unkeyed hash after keyed records "
                "(the chain was recomputed without the key)",
            )
        if not hmac.compare_digest(record_hash(self.prev, record, key), str(record["hash"])):
            return ChainProblem(seq, f"record {seq} was modified after it was written")
        checkpoint = self.expected.get(seq)
        if checkpoint is not None and checkpoint.hash != record["hash"]:
            return ChainProblem(
                seq,
                f"record {seq} does not match the checkpoint on line {checkpoint.line} "
                "(the chain was rewritten up to here)",
            )
        self.prev = str(record["hash"])
        self.seq = seq
        if key is None:
            self.unkeyed += 1
        else:
            self.keyed += 1
        return None

    def finish(self, head_seq: int, head_hash: str) -> ChainProblem | None:
        beyond = [c for c in self.expected.values() if c.seq > self.seq]
        if beyond:
            last = max(beyond, key=lambda c: c.seq)
            return ChainProblem(
                self.seq + 1,
                f"the checkpoint on line {last.line} names record {last.seq} but the log ends at "
                f"record {self.seq} (records removed from the end)",
            )
        if head_seq != self.seq or head_hash != self.prev:
            return ChainProblem(
                self.seq + 1,
                f"the chain head names record {head_seq} but the log ends at record "
                f"{self.seq} (records removed from the end)",
            )
        return None

    def report(self, problem: ChainProblem | None, checkpoints: int) -> ChainReport:
        return ChainReport(self.seq, self.keyed, self.unkeyed, checkpoints, problem)
