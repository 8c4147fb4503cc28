"""The only I/O of the SDK: drive a core operation with httpx, sync or async.

These two small loops are all that differs between ``Client`` and
``AsyncClient``; they send what the core yields and hand back the outcome.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, TypeVar

import httpx

from secretsd import __version__
from secretsd.client._effects import HttpRequest, HttpResponse, Op, Outcome, TransportFailure
from secretsd.client.config import ClientSettings
from secretsd.errors import ConfigError

__all__ = ["http_options", "run_async", "run_sync"]

T = TypeVar("T")

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def http_options(settings: ClientSettings, timeout: float) -> dict[str, Any]:
    """Keyword arguments shared by the httpx.Client and httpx.AsyncClient we build."""
    verify: ssl.SSLContext | bool = True
    if settings.cacert is not None:
        try:
            verify = ssl.create_default_context(cafile=str(settings.cacert))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"cannot load SECRETSD_CACERT {str(settings.cacert)!r}: {error}"
            ) from None
    return {
        "base_url": settings.addr,
        "verify": verify,
        "timeout": httpx.Timeout(timeout),
        "headers": {"User-Agent": f"secretsd-python/{__version__}", "Accept": "application/json"},
        "follow_redirects": False,
    }


def _arguments(request: HttpRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {"headers": request.headers}
    if request.params:
        arguments["params"] = request.params
    if request.json is not None:
        arguments["json"] = request.json
    if request.timeout is not None:
        arguments["timeout"] = httpx.Timeout(request.timeout)
    return arguments


def _failure(error: httpx.TransportError) -> TransportFailure:
    detail = str(error) or type(error).__name__
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return TransportFailure("TLS", detail, sent=False, permanent=True)
        cause = cause.__cause__ or cause.__context__
    return TransportFailure(type(error).__name__, detail, sent=not isinstance(error, _NOT_SENT))


def run_sync(op: Op[T], http: httpx.Client) -> T:
    outcome: Outcome = None
    while True:
        try:
            effect = op.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        if isinstance(effect, HttpRequest):
            try:
                answer = http.request(effect.method, effect.url, **_arguments(effect))
            except httpx.TransportError as error:
                outcome = _failure(error)
            else:
                outcome = HttpResponse(answer.status_code, answer.headers, answer.content)
        else:
            time.sleep(effect.seconds)
            outcome = None


async def run_async(op: Op[T], http: httpx.AsyncClient) -> T:
    outcome: Outcome = None
    while True:
        try:
            effect = op.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        if isinstance(effect, HttpRequest):
            try:
                answer = await http.request(effect.method, effect.url, **_arguments(effect))
            except httpx.TransportError as error:
                outcome = _failure(error)
            else:
                outcome = HttpResponse(answer.status_code, answer.headers, answer.content)
        else:
            await asyncio.sleep(effect.seconds)
            outcome = None
