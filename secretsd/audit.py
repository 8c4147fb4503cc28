"""The audit log: events, the hash chain, a group-committing fail-closed writer.

Every allowed or denied access is one :class:`AuditEvent`. Events never hold
a secret value or a token (the identity is the token's accessor).

Group commit: a request hands its event to the :class:`AuditLog` and waits;
one background task writes everything queued since the last commit in one
transaction. Throughput scales with load while each request still knows its
record is durable before it answers (fail closed: if the write fails the
request fails with AuditUnavailable, like Vault when no audit device works).

The chain: each record carries ``prev_hash`` and ``hash = HMAC(key, prev_hash
|| canonical record)`` with a key kept outside the database, plus checkpoints
in a file outside it (see ``secretsd.audit_anchor``; verified by
``secretsd.audit_verify``). Writers lock the single ``audit_head`` row while
they append, so several workers and replicas sharing one database keep one chain.

One bad record never fails its neighbours: every record is sanitised before it
is hashed (control characters escaped, strings cut to their columns, numbers
bounded), and a batch the database still refuses is retried record by record,
so only the bad one is refused. A sink that cannot be written (the database,
the mirror file on a full disk) refuses the waiting requests (503) and the
writer keeps running: it retries on the next request and once a second on its
own, so audit recovers by itself when the disk has room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine

from secretsd.audit_anchor import (
    CHAINED_FIELDS,
    GENESIS_HASH,
    AuditKey,
    CheckpointLog,
    load_or_create_audit_key,
    record_hash,
)
from secretsd.audit_clean import clean_row
from secretsd.audit_mirror import AuditMirror
from secretsd.audit_query import RECORD_FIELDS, AuditFilter, query_records
from secretsd.audit_verify import ChainProblem, verify_chain
from secretsd.db.engine import database_errors
from secretsd.errors import AuditUnavailable, DatabaseUnavailable, SecretsdError

if TYPE_CHECKING:
    from secretsd.config import Settings

__all__ = [
    "GENESIS_HASH",
    "RECORD_FIELDS",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "ChainAppender",
    "ChainProblem",
    "append_events",
    "clean_row",
    "query_records",
    "record_hash",
    "utc_now_iso",
    "verify_chain",
]

log = logging.getLogger(__name__)


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


_INSERT_COLUMNS = (*CHAINED_FIELDS, "prev_hash", "hash", "key_id")


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

    def __init__(self, engine: Engine, key: AuditKey | None = None) -> None:
        self._engine = engine
        self._key = key
        self._key_id = key.key_id if key is not None else ""
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
            key, key_id = self._key, self._key_id
            for event in events:
                seq += 1
                row = clean_row(event.as_row())
                row["seq"] = seq
                row["prev_hash"] = prev
                row["key_id"] = key_id
                row["hash"] = prev = record_hash(prev, row, key)
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


def append_events(
    engine: Engine, events: Sequence[AuditEvent], key: AuditKey | None = None
) -> list[dict[str, Any]]:
    """Append ``events`` to the chain in one transaction (one-off; writers keep an appender)."""
    appender = ChainAppender(engine, key)
    try:
        return appender.append(events)
    finally:
        appender.close()


class AuditLog:
    """Fail-closed, group-committing audit writer owned by one worker process."""

    #: How often a failing writer retries by itself while no request arrives.
    RETRY_INTERVAL = 1.0

    def __init__(
        self,
        engine: Engine,
        mirror: str | None = None,
        *,
        key: AuditKey | None = None,
        checkpoints: CheckpointLog | None = None,
    ) -> None:
        self._engine = engine
        self._appender = ChainAppender(engine, key)
        # One thread of its own: batches are serial anyway, and a shared pool's
        # other work must not delay a commit that requests are waiting for.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secretsd-audit")
        self._queue: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mirror = AuditMirror(mirror) if mirror else None
        self._checkpoints = checkpoints
        # What is broken right now (None = fine): read by /readyz.
        self._database_error: str | None = None
        self._mirror_error: str | None = None
        self._checkpoint_error: str | None = None
        self.batches = 0
        self.records = 0

    @classmethod
    def for_settings(cls, engine: Engine, settings: Settings) -> AuditLog:
        """The writer ``settings`` ask for: keyed, checkpointed, mirrored."""
        key = load_or_create_audit_key(settings.resolved_audit_key_file)
        checkpoints = CheckpointLog(
            settings.resolved_audit_checkpoint_file, key, settings.audit_checkpoint_interval
        )
        return cls(engine, settings.audit_file, key=key, checkpoints=checkpoints)

    def health(self) -> tuple[bool, str]:
        """Whether audit can be written now, and what is wrong if not (for /readyz)."""
        problems = [
            p for p in (self._database_error, self._mirror_error, self._checkpoint_error) if p
        ]
        return (not problems, "; ".join(problems) or "ok")

    async def start(self) -> None:
        if self._mirror is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._mirror.open)
        self._task = asyncio.create_task(self._run(), name="secretsd-audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        try:
            # Whatever is still queued is written now, so shutdown loses nothing.
            if self._queue:
                await self._flush()
        finally:
            # Even when that last write fails, the connections are closed now, not by the
            # garbage collector later.
            await loop.run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._checkpoints is not None:
            with contextlib.suppress(OSError):
                self._checkpoints.flush()
            self._checkpoints.close()
        if self._mirror is not None:
            self._mirror.close()
        self._appender.close()

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
        loop = asyncio.get_running_loop()
        while True:
            if self.health()[0]:
                await self._wake.wait()
            else:  # broken: retry on the next request or after a while, whichever first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.RETRY_INTERVAL)
            self._wake.clear()
            try:
                if self._queue:
                    await self._flush()
                else:
                    await loop.run_in_executor(self._executor, self._recover)
            except Exception:  # never let the writer die: requests would wait forever
                log.exception("audit writer: unexpected failure, continuing")

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        events = [event for event, _ in batch]
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._commit, events
            )
        except BaseException as error:  # fail closed: every waiting request is refused
            message = error.message if isinstance(error, SecretsdError) else type(error).__name__
            log.error("audit write failed, refusing %d request(s): %s", len(batch), message)
            outcomes = [_refusal()] * len(batch)
            if not isinstance(error, Exception):
                _settle(batch, outcomes)
                raise
        _settle(batch, outcomes)

    # -- in the audit thread ------------------------------------------------

    def _commit(self, events: list[AuditEvent]) -> list[BaseException | None]:
        """Write one batch: sinks first caught up, then the database, mirror, checkpoint."""
        self._recover(idle=False)
        if self._mirror_error is not None:
            raise AuditUnavailable(self._mirror_error)
        try:
            rows = self._appender.append(events)
            outcomes: list[BaseException | None] = [None] * len(events)
        except SecretsdError as error:  # the database itself: every record fails alike
            self._database_error = f"the audit database cannot be written: {error.message}"
            raise
        except Exception as error:
            if len(events) == 1:
                raise
            log.warning("audit batch refused (%s); retrying record by record", type(error).__name__)
            rows, outcomes = self._one_by_one(events)
        self._database_error = None
        self.batches += 1
        self.records += len(rows)
        self._after_commit(rows)
        return outcomes

    def _one_by_one(
        self, events: list[AuditEvent]
    ) -> tuple[list[dict[str, Any]], list[BaseException | None]]:
        """Store each record alone; a record the database refuses is stored as a stub or refused."""
        rows: list[dict[str, Any]] = []
        outcomes: list[BaseException | None] = []
        for event in events:
            try:
                rows.extend(self._appender.append([event]))
                outcomes.append(None)
                continue
            except SecretsdError:
                raise
            except Exception as error:
                stub = AuditEvent(
                    action=event.action,
                    outcome=event.outcome,
                    identity=event.identity,
                    client=event.client,
                    request_id=event.request_id,
                    time=event.time,
                    detail=f"record refused by the database ({type(error).__name__}); stub stored",
                )
            try:
                rows.extend(self._appender.append([stub]))
                outcomes.append(None)
            except SecretsdError:
                raise
            except Exception as error:
                log.error("audit record refused by the database: %s", type(error).__name__)
                outcomes.append(_refusal())
        return rows, outcomes

    def _after_commit(self, rows: list[dict[str, Any]]) -> None:
        if self._mirror is not None:
            try:
                self._mirror.write(rows)
            except (OSError, ValueError) as error:
                self._mirror_error = _sink_error("the audit mirror", error)
                log.error(
                    "%s; refusing audited requests until it can be written", self._mirror_error
                )
                raise AuditUnavailable(self._mirror_error) from None
        if self._checkpoints is not None and rows:
            try:
                self._checkpoints.note(int(rows[-1]["seq"]), str(rows[-1]["hash"]))
                self._checkpoint_error = None
            except OSError as error:
                if self._checkpoint_error is None:
                    log.error("%s", _sink_error("the audit checkpoint file", error))
                self._checkpoint_error = _sink_error("the audit checkpoint file", error)

    def _recover(self, idle: bool = True) -> None:
        """Retry whatever failed last time: the mirror's backlog, a pending checkpoint, the DB.

        The database is only probed when idle: a batch is its own probe.
        """
        if self._mirror is not None and self._mirror_error is not None:
            try:
                self._mirror.write([])
            except (OSError, ValueError) as error:
                self._mirror_error = _sink_error("the audit mirror", error)
            else:
                log.warning("the audit mirror can be written again; serving audited requests")
                self._mirror_error = None
        if self._checkpoints is not None and self._checkpoint_error is not None:
            try:
                self._checkpoints.flush()
                self._checkpoint_error = None
            except OSError as error:
                self._checkpoint_error = _sink_error("the audit checkpoint file", error)
        if self._database_error is not None and idle:
            from secretsd.db.engine import probe_writable

            ok, detail = probe_writable(self._engine)
            self._database_error = None if ok else f"the audit database: {detail}"


def _sink_error(what: str, error: BaseException) -> str:
    reason = (
        error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
    )
    return f"{what} cannot be written ({reason})"


def _refusal() -> AuditUnavailable:
    return AuditUnavailable(
        "the audit log could not be written, so the request was refused; "
        "check secretsd's database, disk space and audit files"
    )


def _settle(
    batch: list[tuple[AuditEvent, asyncio.Future[None]]], outcomes: Sequence[BaseException | None]
) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
