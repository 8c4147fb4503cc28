"""Reading the audit log: filters and pages for ``GET /v1/audit`` and ``audit list``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from secretsd.audit_anchor import CHAINED_FIELDS
from secretsd.db.engine import database_errors
from secretsd.db.models import AuditRecord

__all__ = ["RECORD_FIELDS", "AuditFilter", "query_records"]

_AUDIT = AuditRecord.__table__


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
