"""The one read decision: authorise → read → audit → answer.

Every way a secret is read goes through :func:`decide`: the ASGI fast path
(:mod:`secretsd.server.fastpath`), the FastAPI route, the long-poll (after its
wait) and batch resolve. :func:`decide` returns the outcome *and* its audit
record without writing it, so single reads audit one record (awaited: fail
closed) and resolve audits its whole batch at once; :func:`answer` turns a
decision into the one HTTP response both the route and the fast path send.
The fast path only differs in how it gets there (no framework), which
``tests/test_read_paths.py`` proves by running the same requests both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from starlette.responses import Response

from secretsd.audit import AuditEvent
from secretsd.errors import Forbidden, SecretsdError
from secretsd.server.secrets_service import ReadResult
from secretsd.server.state import AppState, Caller, audit_event

__all__ = [
    "ReadDecision",
    "answer",
    "decide",
    "forbidden",
    "not_modified",
    "parse_if_none_match",
    "record",
]

_STALE_WARNING = b'110 secretsd "Response is Stale: Vault is unavailable"'


@dataclass(frozen=True, slots=True)
class ReadDecision:
    """What one read decided: the result or the error, and the audit record that says so."""

    event: AuditEvent
    result: ReadResult | None = None
    error: SecretsdError | None = None
    not_modified: bool = False

    def with_event(self, **changes: object) -> ReadDecision:
        return replace(self, event=replace(self.event, **changes))  # type: ignore[arg-type]


def parse_if_none_match(raw: str | None) -> int | None:
    """The version named by ``If-None-Match`` (``"3"``, ``W/"3"`` or ``3``), if any."""
    if not raw:
        return None
    for candidate in raw.split(","):
        tag = candidate.strip().removeprefix("W/").strip('"')
        if tag.isdigit() and len(tag) <= 18:
            return int(tag)
    return None


def forbidden(caller: Caller, capability: str, path: str) -> Forbidden:
    who = caller.identity.display_name or "this token"
    return Forbidden(
        f"{capability} on {path!r} is not allowed for {who}"
        f" (policies: {', '.join(caller.identity.policies) or 'none'}); ask an admin for a "
        "policy that grants it"
    )


async def decide(
    state: AppState,
    caller: Caller,
    path: str,
    version: int | None,
    *,
    action: str = "read",
    known: int | None = None,
    newer_than: int | None = None,
) -> ReadDecision:
    """Authorise and read once; never raises a SecretsdError (it is in the decision).

    ``known`` is the client's cached version (If-None-Match: answer "not
    modified"); ``newer_than`` is a long-poll's baseline (the watcher saw a
    newer version, so a cached copy at or below it is refetched).
    """

    def event(outcome: str, number: int | None, detail: str = "", act: str = action) -> AuditEvent:
        return audit_event(
            caller.identity,
            action=act,
            outcome=outcome,
            path=path,
            version=number,
            client=caller.client,
            request_id=caller.request_id,
            detail=detail,
        )

    if not state.allowed(caller, "read", path):
        return ReadDecision(
            event("denied", version, "no policy allows"), error=forbidden(caller, "read", path)
        )
    try:
        result = await state.secrets.read(path, version)
        if newer_than is not None and result.secret.version <= newer_than and state.secrets.cache:
            state.secrets.cache.invalidate(path)
            result = await state.secrets.read(path, version)
    except SecretsdError as error:
        return ReadDecision(event("error", version, error.code), error=error)
    number = result.secret.version
    if known is not None and known == number and newer_than is None:
        return ReadDecision(
            event("allowed", known, "not modified", act="check"), result, not_modified=True
        )
    return ReadDecision(event("allowed", number, "stale" if result.stale else ""), result)


async def record(state: AppState, decision: ReadDecision) -> None:
    """Write the decision's audit record; raises AuditUnavailable (fail closed)."""
    await state.audit_log.record(decision.event)
    state.metrics.audit_records.inc()


class _Prepared(Response):
    """A response whose header bytes are built here once, for the route and the fast path.

    Starlette's ``Response.__init__`` would build the same list from a dict on
    every read; the hot path skips that, and both paths send identical bytes.
    """

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = headers


def not_modified(version: int) -> Response:
    return _Prepared(304, [(b"etag", b'"%d"' % version), (b"cache-control", b"no-store")])


def _secret_response(result: ReadResult) -> Response:
    body = result.entry.body
    headers = [(b"etag", b'"%d"' % result.secret.version), (b"cache-control", b"no-store")]
    if result.stale:
        headers += [(b"x-secretsd-stale", b"true"), (b"warning", _STALE_WARNING)]
    headers += [
        (b"content-length", b"%d" % len(body)),
        (b"content-type", b"application/json"),
    ]
    return _Prepared(200, headers, body)


async def answer(
    state: AppState,
    caller: Caller,
    path: str,
    version: int | None,
    *,
    known: int | None = None,
    newer_than: int | None = None,
) -> Response:
    """Decide, audit (fail closed), then build the response; errors are raised."""
    decision = await decide(state, caller, path, version, known=known, newer_than=newer_than)
    await record(state, decision)
    if decision.error is not None:
        raise decision.error
    result = decision.result
    assert result is not None
    if decision.not_modified:
        return not_modified(result.secret.version)
    return _secret_response(result)
