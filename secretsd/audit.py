"""The audit log: events, the hash chain, a group-committing fail-closed writer.

Every allowed or denied access is one :class:`AuditEvent`. Events never hold
a secret value or a token (the identity is the token's accessor).

Group commit: a request hands its event to the :class:`AuditLog` and waits;
one background task writes everything queued since the last commit in one
transaction. Throughput scales with load while each request still knows its
record is durable before it answers (fail closed: if the write fails the
request fails with AuditUnavailable, like Vault when no audit device works).

The chain: each record carries ``prev_hash`` and ``hash = sha256(prev_hash ||
canonical record)``. Writers lock the single ``audit_head`` row while they
append, so several workers and replicas sharing one database keep one chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from sqlalchemy import Engine, select

from secretsd.db.engine import database_errors
from secretsd.db.models import AuditHead, AuditRecord
from secretsd.errors import AuditUnavailable, DatabaseUnavailable, SecretsdError

__all__ = [
    "GENESIS_HASH",
    "RECORD_FIELDS",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "ChainAppender",
    "ChainProblem",
    "append_events",
    "query_records",
    "record_hash",
    "utc_now_iso",
    "verify_chain",
]

log = logging.getLogger(__name__)
_AUDIT = AuditRecord.__table__
GENESIS_HASH = "0" * 64

#: The fields that are hashed, in order. Adding one is a schema change.
CHAINED_FIELDS = (
    "seq",
    "time",
    "request_id",
    "identity",
    "display_name",
    "method",
    "action",
    "path",
    "version",
    "outcome",
    "client",
    "detail",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited action. Never a secret value, never a token."""

    action: str
    outcome: str  # "allowed", "denied" or "error"
    path: str = ""
    version: int | None = None
    identity: str = ""
    display_name: str = ""
    method: str = ""
    client: str = ""
    request_id: str = ""
    detail: str = ""
    time: str = field(default_factory=utc_now_iso)

    def as_row(self) -> dict[str, Any]:
        """The event's fields as a dict (cheaper than dataclasses.asdict on the hot path)."""
        return {name: getattr(self, name) for name in _EVENT_FIELDS}


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """``sha256(prev_hash || canonical JSON of the chained fields)``.

    Canonical JSON here is a compact JSON array of the fields in CHAINED_FIELDS
    order, UTF-8 encoded, so an auditor can re-check the chain with any JSON tool.
    """
    canonical = orjson.dumps([record[name] for name in CHAINED_FIELDS])
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


_INSERT_COLUMNS = (*CHAINED_FIELDS, "prev_hash", "hash")


def _statements(style: str) -> tuple[str, str]:
    """The insert and head-update SQL in a driver's placeholder style (constants only)."""

    def p(name: str) -> str:
        return f"%({name})s" if style == "pyformat" else f":{name}"

    insert_sql = (
        f"INSERT INTO audit_log ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608 - fixed names
        f"VALUES ({', '.join(p(c) for c in _INSERT_COLUMNS)})"
    )
    head_sql = f"UPDATE audit_head SET last_seq = {p('seq')}, last_hash = {p('hash')} WHERE id = 1"  # noqa: S608
    return insert_sql, head_sql


_SQL = {"sqlite": _statements("named"), "postgresql": _statements("pyformat")}


class ChainAppender:
    """Appends batches of events to the chain; one per writer, kept for its lifetime.

    It holds one database connection (no pool checkout per batch) and, for
    SQLite, an open lock file: SQLite's busy handler retries a locked database
    after sleeps of up to 100 ms, which wrecks group-commit latency when
    worker processes contend, while a blocking ``flock`` wakes the next writer
    the moment the lock is released. PostgreSQL's row lock needs no help.

    Each batch is one transaction whose first statement updates the head row,
    which takes PostgreSQL's row lock or SQLite's write lock before anything
    is read, so the head read is the latest and no other writer can
    interleave. Rows go in with one driver-level ``executemany``: this runs
    for every request, so it skips the ORM's per-row work.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert_sql, self._head_sql = _SQL[engine.dialect.name]
        self._connection: Any = None
        self._lock_file: TextIO | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._lock_path: str | None = database + ".audit-lock"
        else:
            self._lock_path = None

    def append(self, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
        """Append ``events`` in one transaction; return the stored rows."""
        with database_errors(self._engine):
            if self._connection is None:
                self._connection = self._engine.raw_connection()
            if self._lock_path is not None and self._lock_file is None:
                self._lock_file = open(self._lock_path, "a")  # noqa: SIM115 - kept open
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                return self._append_locked(events)
            except BaseException:
                self._discard_connection()
                raise
            finally:
                if self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _append_locked(self, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        connection = self._connection
        cursor = connection.cursor()
        try:
            cursor.execute("UPDATE audit_head SET last_seq = last_seq WHERE id = 1")
            cursor.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
            head = cursor.fetchone()
            if head is None:
                raise DatabaseUnavailable("the audit chain head row is missing; run migrations")
            seq, prev = int(head[0]), str(head[1])
            for event in events:
                seq += 1
                row = event.as_row()
                row["seq"] = seq
                row["prev_hash"] = prev
                row["hash"] = prev = record_hash(prev, row)
                rows.append(row)
            cursor.executemany(self._insert_sql, rows)
            cursor.execute(self._head_sql, {"seq": seq, "hash": prev})
        finally:
            cursor.close()
        connection.commit()
        return rows

    def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                connection.invalidate()  # a failed connection never goes back to the pool

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def append_events(engine: Engine, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """Append ``events`` to the chain in one transaction (one-off; writers keep an appender)."""
    appender = ChainAppender(engine)
    try:
        return appender.append(events)
    finally:
        appender.close()


@dataclass(frozen=True)
class ChainProblem:
    """The first place where the stored chain stops being consistent."""

    seq: int
    reason: str


def verify_chain(engine: Engine, batch: int = 5000) -> tuple[int, ChainProblem | None]:
    """Walk the whole chain; return (records checked, first problem or None).

    Detects an edited record (its hash no longer matches), a removed record
    (a gap in ``seq`` or a ``prev_hash`` that names another record), reordered
    records (``prev_hash`` mismatch) and a cut-off tail (the head row names a
    later record than the last one stored).
    """
    checked = 0
    expected_seq = 1
    prev = GENESIS_HASH
    with database_errors(engine), engine.connect() as connection:
        last_seq = 0
        while True:
            records = connection.execute(
                select(_AUDIT).where(_AUDIT.c.seq > last_seq).order_by(_AUDIT.c.seq).limit(batch)
            ).all()
            if not records:
                break
            for record in records:
                row = {name: getattr(record, name) for name in CHAINED_FIELDS}
                if record.seq != expected_seq:
                    return checked, ChainProblem(
                        expected_seq,
                        f"record {expected_seq} is missing (next stored record is {record.seq})",
                    )
                if record.prev_hash != prev:
                    return checked, ChainProblem(
                        record.seq,
                        f"record {record.seq} does not follow record {record.seq - 1} "
                        "(removed, reordered or replaced records)",
                    )
                if record_hash(prev, row) != record.hash:
                    return checked, ChainProblem(
                        record.seq, f"record {record.seq} was modified after it was written"
                    )
                prev = record.hash
                expected_seq += 1
                checked += 1
            last_seq = records[-1].seq
        head = connection.execute(
            select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)
        ).one()
        if int(head.last_seq) != checked or head.last_hash != prev:
            return checked, ChainProblem(
                checked + 1,
                f"the chain head names record {head.last_seq} but the log ends at record "
                f"{checked} (records removed from the end)",
            )
    return checked, None


@dataclass(frozen=True)
class AuditFilter:
    """What ``GET /v1/audit`` and ``secretsd audit list`` can filter on."""

    path_prefix: str = ""
    identity: str = ""  # an accessor or a display name
    outcome: str = ""
    action: str = ""
    since: str = ""  # ISO 8601 UTC, inclusive
    until: str = ""  # ISO 8601 UTC, exclusive


RECORD_FIELDS = ("seq", *CHAINED_FIELDS[1:], "prev_hash", "hash")


def query_records(
    engine: Engine,
    where: AuditFilter,
    *,
    limit: int = 100,
    after: int | None = None,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of records and the cursor (a sequence number) for the next, if any."""
    table = _AUDIT
    query = select(*(table.c[name] for name in RECORD_FIELDS))
    if where.path_prefix:
        prefix = where.path_prefix.rstrip("/")
        query = query.where((table.c.path == prefix) | table.c.path.startswith(prefix + "/"))
    if where.identity:
        query = query.where(
            (table.c.identity == where.identity) | (table.c.display_name == where.identity)
        )
    if where.outcome:
        query = query.where(table.c.outcome == where.outcome)
    if where.action:
        query = query.where(table.c.action == where.action)
    if where.since:
        query = query.where(table.c.time >= where.since)
    if where.until:
        query = query.where(table.c.time < where.until)
    if after is not None:
        query = query.where(table.c.seq < after if newest_first else table.c.seq > after)
    order = table.c.seq.desc() if newest_first else table.c.seq.asc()
    query = query.order_by(order).limit(limit + 1)
    with database_errors(engine), engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (int(rows[-1]["seq"]) if more and rows else None)


class AuditLog:
    """Fail-closed, group-committing audit writer owned by one worker process."""

    def __init__(self, engine: Engine, mirror: str | None = None) -> None:
        self._engine = engine
        self._appender = ChainAppender(engine)
        # One thread of its own: batches are serial anyway, and a shared pool's
        # other work must not delay a commit that requests are waiting for.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secretsd-audit")
        self._queue: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mirror_target = mirror
        self._mirror: TextIO | None = None
        self._mirror_lock = threading.Lock()
        self.batches = 0
        self.records = 0

    async def start(self) -> None:
        if self._mirror_target == "-":
            self._mirror = sys.stdout
        elif self._mirror_target:
            self._mirror = open(self._mirror_target, "a", encoding="utf-8")  # noqa: SIM115
        self._task = asyncio.create_task(self._run(), name="secretsd-audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Whatever is still queued is written now, so shutdown loses nothing.
        if self._queue:
            await self._flush()
        if self._mirror is not None and self._mirror is not sys.stdout:
            self._mirror.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._appender.close)
        self._executor.shutdown(wait=True)

    async def record(self, event: AuditEvent) -> None:
        """Queue one event and wait until it is durable; AuditUnavailable otherwise."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wake.set()
        await future

    async def record_many(self, events: Iterable[AuditEvent]) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for event in events:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((event, future))
            futures.append(future)
        if futures:
            self._wake.set()
            await asyncio.gather(*futures)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        events = [event for event, _ in batch]
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._appender.append, events
            )
        except Exception as error:  # fail closed: every waiting request is refused
            message = error.message if isinstance(error, SecretsdError) else type(error).__name__
            log.error("audit write failed, refusing %d request(s): %s", len(batch), message)
            failure = AuditUnavailable(
                "the audit log could not be written, so the request was refused; "
                "check secretsd's database"
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self.batches += 1
        self.records += len(rows)
        if self._mirror is not None:
            self._write_mirror(rows)
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def _write_mirror(self, rows: list[dict[str, Any]]) -> None:
        lines = b"".join(orjson.dumps(row) + b"\n" for row in rows).decode("utf-8")
        with self._mirror_lock:
            assert self._mirror is not None
            self._mirror.write(lines)
            self._mirror.flush()
