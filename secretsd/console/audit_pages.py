"""Audit explorer: filters, a chart of reads / writes / denials, top readers, export.

Everything comes from ``GET /v1/audit`` (``read`` on ``sys/audit``) and the
chain status from ``GET /v1/audit/chain``. Records hold no values, so the
page and the exports carry none either.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response, StreamingResponse

from secretsd.console.session import ApiError
from secretsd.console.web import Ctx, SessionDep, render

__all__ = ["router"]

router = APIRouter()
WRITES = frozenset({"write", "patch", "delete", "destroy", "undelete", "delete-all"})
CHART_RECORDS = 5000
EXPORT_RECORDS = 100_000
BUCKETS = 40
MIN_BUCKET_SECONDS = 60.0
FIELDS = (
    "seq",
    "time",
    "identity",
    "display_name",
    "method",
    "action",
    "path",
    "version",
    "outcome",
    "client",
    "detail",
    "request_id",
)


@dataclass(frozen=True)
class AuditFilters:
    """The audit explorer's filters, read from the query string once for every route.

    FastAPI builds it from the query (``Depends()`` on a dataclass reads its
    fields as query parameters), so the page and its exports agree on them.
    """

    identity: str = ""
    path_prefix: str = ""
    action: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""

    def given(self) -> dict[str, str]:
        """The filters set, trimmed and bounded, as ``GET /v1/audit`` parameters."""
        return {k: v.strip()[:1024] for k, v in asdict(self).items() if v.strip()}


FiltersDep = Annotated[AuditFilters, Depends()]


async def _records(ctx: Ctx, filters: dict[str, str], most: int) -> AsyncIterator[dict[str, Any]]:
    cursor = ""
    seen = 0
    while seen < most:
        params: dict[str, Any] = {**filters, "limit": min(1000, most - seen), "order": "desc"}
        if cursor:
            params["cursor"] = cursor
        page = await ctx.api.json("GET", "/v1/audit", params=params)
        for record in page.get("records", []):
            seen += 1
            yield record
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def chart_series(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Bucket records over time into reads, writes and denials (uPlot's column layout)."""
    stamps = [(_epoch(str(r.get("time", ""))), r) for r in records]
    timed = [(t, r) for t, r in stamps if t is not None]
    series: dict[str, list[float]] = {"t": [], "reads": [], "writes": [], "denials": []}
    if not timed:
        return series
    low = min(t for t, _ in timed)
    high = max(t for t, _ in timed)
    width = max((high - low) / BUCKETS, MIN_BUCKET_SECONDS)
    count = int((high - low) // width) + 1
    reads, writes, denials = [0] * count, [0] * count, [0] * count
    for stamp, record in timed:
        index = min(int((stamp - low) // width), count - 1)
        if record.get("outcome") == "denied":
            denials[index] += 1
        elif record.get("action") == "read":
            reads[index] += 1
        elif record.get("action") in WRITES:
            writes[index] += 1
    series["t"] = [low + i * width for i in range(count)]
    series["reads"] = [float(n) for n in reads]
    series["writes"] = [float(n) for n in writes]
    series["denials"] = [float(n) for n in denials]
    return series


@router.get("/audit")
async def audit_page(ctx: SessionDep, chosen: FiltersDep) -> Response:
    filters = chosen.given()
    error = ""
    records: list[dict[str, Any]] = []
    try:
        async for record in _records(ctx, filters, CHART_RECORDS):
            records.append(record)
    except ApiError as failure:
        if failure.status == 401:
            raise
        error = failure.message
    chain: dict[str, Any] | None = None
    if not error:
        try:
            chain = await ctx.api.json("GET", "/v1/audit/chain")
        except ApiError as failure:
            if failure.status == 401:
                raise
    readers = Counter(
        str(r.get("display_name") or r.get("identity") or "anonymous")
        for r in records
        if r.get("action") == "read" and r.get("outcome") == "allowed"
    )
    return render(
        ctx.request,
        "audit.html",
        ctx,
        section="audit",
        filters=filters,
        records=records[:200],
        total=len(records),
        capped=len(records) >= CHART_RECORDS,
        series=chart_series(records),
        readers=readers.most_common(10),
        chain=chain,
        error=error,
    )


@router.get("/audit/export")
async def audit_export(ctx: SessionDep, chosen: FiltersDep, format: str = "csv") -> Response:
    """Every matching record (newest first, at most 100,000) as CSV or JSON lines."""
    filters = chosen.given()
    first: list[dict[str, Any]] = []
    source = _records(ctx, filters, EXPORT_RECORDS)
    async for record in source:  # fail here, before the answer starts, if not allowed
        first.append(record)
        break
    as_json = format == "json"

    async def body() -> AsyncIterator[bytes]:
        if not as_json:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore")
            writer.writeheader()
            yield buffer.getvalue().encode()
        for record in first:
            yield _line(record, as_json)
        async for record in source:
            yield _line(record, as_json)

    name = "audit.jsonl" if as_json else "audit.csv"
    return StreamingResponse(
        body(),
        media_type="application/x-ndjson" if as_json else "text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _line(record: dict[str, Any], as_json: bool) -> bytes:
    if as_json:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode()
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore").writerow(record)
    return buffer.getvalue().encode()
