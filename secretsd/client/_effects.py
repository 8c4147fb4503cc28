"""The vocabulary between the sans-IO core and its two shells.

An operation of the core is a generator: it yields an effect (send this
HTTP request, sleep this long), receives the outcome (a response or a
transport failure) and finally returns its result. ``Client`` drives it
with httpx.Client and ``time.sleep``, ``AsyncClient`` with httpx.AsyncClient
and ``asyncio.sleep``; everything else (URLs, headers, auth, retries,
renewal, cache bookkeeping, mapping answers to our types and errors) is
written once, in the core.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Effect", "HttpRequest", "HttpResponse", "Op", "Outcome", "Sleep", "TransportFailure"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP call, relative to the client's base URL."""

    method: str
    url: str
    params: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Read timeout override (long-polls wait longer than ordinary calls).
    timeout: float | None = None
    #: May be sent again after a transport failure mid-request (reads, deletes).
    idempotent: bool = True
    #: May be sent again after a refusal carrying Retry-After (429, or a 503 with one).
    #: None decides by method: GET and HEAD may, other methods may not. A write sets
    #: True only with a check-and-set (a replay that had landed fails its check rather
    #: than adding a version).
    replayable: bool | None = None
    #: A login: the service answers 429 before any work, so a 429 may be retried too.
    login: bool = False

    def __repr__(self) -> str:  # bodies and headers may hold values and tokens
        return f"HttpRequest({self.method} {self.url})"

    @property
    def may_replay(self) -> bool:
        """Whether the request may be sent again after a refusal with Retry-After."""
        return self.method in ("GET", "HEAD") if self.replayable is None else self.replayable


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    content: bytes

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, {len(self.content)} bytes)"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The request got no HTTP answer.

    ``sent`` is False when the request surely never reached the server
    (connection refused, connect timeout), so even a write may be retried.
    """

    kind: str
    detail: str
    sent: bool
    #: Trying again cannot help (a TLS certificate that does not verify).
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Effect = HttpRequest | Sleep
Outcome = HttpResponse | TransportFailure | None
Op = Generator[Effect, Outcome, T]
