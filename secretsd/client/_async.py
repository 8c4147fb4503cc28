"""``AsyncClient``: the asyncio shell around the same sans-IO core (httpx.AsyncClient).

Method for method the same API as ``Client`` (see its docstrings), awaited.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from secretsd.backends.base import SecretMetadata, SecretVersion, VersionInfo
from secretsd.client._base import ClientBase
from secretsd.client._drive import http_options, run_async
from secretsd.client._effects import Op
from secretsd.client._report import settle
from secretsd.client._retry import Retry
from secretsd.client._types import Resolved, SecretWrite, TokenInfo, Written
from secretsd.client._watch import Latest, Subscription, WatchHandle, WatchHub
from secretsd.client._wire import as_path, path_of
from secretsd.client.config import ClientSettings
from secretsd.errors import ConfigError
from secretsd.ref import Reference

__all__ = ["AsyncClient", "AsyncWatch", "Changes"]

T = TypeVar("T")
_StrList = builtins.list[str]


class AsyncWatch(WatchHandle):
    """A registered watch callback of an AsyncClient; ``stop()`` ends it."""

    def __init__(self, hub: WatchHub, subscription: Subscription) -> None:
        super().__init__(subscription, hub.unsubscribe)

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


class Changes:
    """``async for secret in client.changes(ref)``: each new version of a secret.

    Iteration starts from the version current when it begins; a slow reader
    skips to the newest version. ``async with`` (or ``aclose()``) stops it.
    """

    def __init__(self, client: AsyncClient, path: str) -> None:
        self._client = client
        self.path = path
        self._slot: Latest | None = None
        self._subscription: Subscription | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Changes(path={self.path!r})"

    async def start(self) -> None:
        if self._subscription is None and not self._closed:
            slot = self._slot = Latest()
            self._subscription = await self._client._subscribe(self.path, slot.put, slot.close)

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> SecretVersion:
        await self.start()
        if self._closed or self._slot is None:
            raise StopAsyncIteration
        return await self._slot.get()

    async def aclose(self) -> None:
        self._closed = True
        if self._subscription is not None:
            self._client._unsubscribe(self._subscription)
        if self._slot is not None:
            self._slot.close()

    async def __aenter__(self) -> Changes:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient(ClientBase):
    """The asyncio twin of ``Client``: same arguments, same methods, awaited."""

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        *,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        cache_ttl: float = 1.0,
        retry: Retry | None = None,
        auto_renew: bool = True,
        watch_wait: float = 30.0,
        report_versions: bool | None = None,
        consumer: str | None = None,
    ) -> None:
        super().__init__(
            addr,
            token,
            settings=settings,
            timeout=timeout,
            cache_ttl=cache_ttl,
            retry=retry,
            auto_renew=auto_renew,
            watch_wait=watch_wait,
            report_versions=report_versions,
            consumer=consumer,
        )
        self._transport = transport
        options = http_options(self._core.settings, self._core.timeout)
        self._http = httpx.AsyncClient(transport=transport, **options)
        # Long-polls get their own pool, so many watched paths never starve calls.
        self._watch_http = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            **options,
        )
        self._hub = WatchHub(self._core, lambda op: run_async(op, self._watch_http))
        self._closed = False
        self._report_task: asyncio.Task[None] | None = None
        self._report_wake: asyncio.Event | None = None
        if self.reports_versions:
            self._core.on_news = self._wake_reporter

    # -- reporting held versions (see secretsd.client._held) -----------------------

    def _wake_reporter(self) -> None:
        """Called from a read, on the running loop: start or nudge the report task."""
        if self._closed:
            return
        if self._report_task is None or self._report_task.done():
            self._report_wake = asyncio.Event()
            self._report_task = asyncio.get_running_loop().create_task(self._report_loop())
        assert self._report_wake is not None
        self._report_wake.set()

    async def _report_loop(self) -> None:
        held, wake = self._core.held, self._report_wake
        assert wake is not None
        while not self._closed:
            delay = held.wait_time()
            if delay > 0:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(delay, 3600.0))
                continue
            for batch in held.take():
                try:
                    await self._run(self._core.report_op(batch, self.consumer))
                except Exception as error:
                    if not settle(held, batch, error):
                        return
                else:
                    settle(held, batch, None)

    async def _stop_reporting(self) -> None:
        task = self._report_task
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # closing goes on
            await task
        for batch in self._core.held.release():
            try:
                await self._run(self._core.report_op(batch, self.consumer, final=True))
            except Exception:
                return

    async def _run(self, op: Op[T]) -> T:
        return await run_async(op, self._http)

    # -- reading ------------------------------------------------------------------

    async def get(self, ref: str | Reference) -> str:
        return await self._run(self._core.get_op(ref))

    async def get_bytes(self, ref: str | Reference) -> bytes:
        return await self._run(self._core.get_bytes_op(ref))

    async def get_map(
        self, path_or_ref: str | Reference, *, version: int | None = None
    ) -> dict[str, str]:
        return await self._run(self._core.get_map_op(path_or_ref, version))

    async def read(self, path: str, version: int | None = None) -> SecretVersion:
        return await self._run(self._core.read_op(as_path(path), version))

    async def resolve(
        self, refs: Iterable[str | Reference], *, raise_errors: bool = True
    ) -> builtins.list[Resolved]:
        return await self._run(
            self._core.resolve_op(builtins.list(refs), raise_errors=raise_errors)
        )

    async def metadata(self, path: str) -> SecretMetadata:
        return await self._run(self._core.metadata_op(as_path(path)))

    async def versions(self, path: str) -> tuple[VersionInfo, ...]:
        return (await self.metadata(path)).versions

    async def list(self, prefix: str = "") -> _StrList:
        return await self._run(self._core.list_op(prefix))

    async def lookup_value_hashes(self, prefixes: Iterable[str]) -> set[str]:
        """Full SHA-256 of readable stored values matching the five-hex-digit prefixes."""
        return await self._run(self._core.value_hashes_op(builtins.list(prefixes)))

    # -- writing ------------------------------------------------------------------

    async def put(
        self,
        path: str,
        data: Mapping[str, str | bytes],
        *,
        cas: int | None = None,
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        return await self._run(
            self._core.write_op(as_path(path), data, cas=cas, custom_metadata=custom_metadata)
        )

    async def put_many(
        self, writes: Iterable[SecretWrite], *, raise_errors: bool = True
    ) -> builtins.list[Written]:
        return await self._run(
            self._core.write_many_op(builtins.list(writes), raise_errors=raise_errors)
        )

    async def write(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        return await self._run(
            self._core.write_op(
                path, data, cas=cas, binary_keys=binary_keys, custom_metadata=custom_metadata
            )
        )

    async def patch(
        self,
        path: str,
        changes: Mapping[str, str | bytes | None],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
    ) -> int:
        return await self._run(
            self._core.write_op(
                as_path(path), changes, cas=cas, binary_keys=binary_keys, patch=True
            )
        )

    async def update_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None = None,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        await self._run(
            self._core.update_metadata_op(
                path, custom_metadata, max_versions=max_versions, cas_required=cas_required
            )
        )

    async def delete(self, path: str, versions: Sequence[int] | None = None) -> None:
        await self._run(self._core.delete_op(as_path(path), versions))

    async def undelete(self, path: str, versions: Sequence[int]) -> None:
        await self._run(self._core.versions_op("undelete", as_path(path), versions))

    async def destroy(self, path: str, versions: Sequence[int]) -> None:
        await self._run(self._core.versions_op("destroy", as_path(path), versions))

    async def delete_all(self, path: str) -> None:
        await self._run(self._core.delete_all_op(as_path(path)))

    # -- tokens -------------------------------------------------------------------

    async def login_approle(self, role_id: str, secret_id: str) -> TokenInfo:
        body = {"role_id": role_id, "secret_id": secret_id}
        return await self._run(self._core.login_op("approle", body))

    async def login_kubernetes(self, role: str, jwt: str) -> TokenInfo:
        return await self._run(self._core.login_op("kubernetes", {"role": role, "jwt": jwt}))

    async def token_info(self) -> TokenInfo:
        return await self._run(self._core.token_self_op())

    async def renew_token(self, increment: str | None = None) -> TokenInfo:
        return await self._run(self._core.renew_op(increment))

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Call any ``/v1/...`` endpoint; returns the JSON body."""
        return await self._run(self._core.request_op(method, url, json=json, params=params))

    # -- watching -----------------------------------------------------------------

    async def watch(
        self, ref: str | Reference, callback: Callable[[SecretVersion], Any]
    ) -> AsyncWatch:
        """Call ``callback(new_version)`` (a function or a coroutine function) on each change."""
        subscription = await self._subscribe(path_of(ref), callback)
        return AsyncWatch(self._hub, subscription)

    def changes(self, ref: str | Reference) -> Changes:
        """An async iterator over the new versions of a secret."""
        return Changes(self, path_of(ref))

    async def _subscribe(
        self,
        path: str,
        deliver: Callable[[SecretVersion], Any],
        on_stop: Callable[[], None] | None = None,
    ) -> Subscription:
        if self._closed:
            raise ConfigError("this AsyncClient is closed")
        baseline = await self._run(self._core.baseline_op(path))
        return self._hub.subscribe(path, baseline, deliver, on_stop)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._hub.unsubscribe(subscription)

    # -- lifecycle ------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._hub.close()
        await self._stop_reporting()
        await asyncio.gather(self._http.aclose(), self._watch_http.aclose())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
