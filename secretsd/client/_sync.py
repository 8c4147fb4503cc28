"""``Client``: the blocking shell around the sans-IO core (httpx.Client)."""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from secretsd.backends.base import SecretMetadata, SecretVersion, VersionInfo
from secretsd.client._base import ClientBase
from secretsd.client._drive import http_options, run_async, run_sync
from secretsd.client._effects import Op
from secretsd.client._held import ReportBatch
from secretsd.client._report import ReportThread
from secretsd.client._retry import Retry
from secretsd.client._types import Resolved, SecretWrite, TokenInfo, Written
from secretsd.client._watch import Subscription, WatchHandle, WatchHub
from secretsd.client._wire import as_path, path_of
from secretsd.client.config import ClientSettings
from secretsd.errors import ConfigError
from secretsd.ref import Reference

__all__ = ["Client", "Watch"]

T = TypeVar("T")
_StrList = builtins.list[str]


class Watch(WatchHandle):
    """A registered watch callback; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(self, client: Client, subscription: Subscription) -> None:
        super().__init__(subscription, client._unsubscribe)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _LoopThread:
    """A private asyncio loop on a daemon thread, for the long-poll loops of a Client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="secretsd-watch", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the loop and return its result (inline if already there)."""
        if threading.current_thread() is self.thread:
            return function()

        async def wrapper() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()

    def run(self, coroutine: Any, timeout: float | None = None) -> Any:
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            coroutine, self.loop
        )
        return future.result(timeout)

    def stop(self) -> None:
        """Stop the loop; the thread closes it on its way out."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Client(ClientBase):
    """A blocking client of the secretsd service; also a remote ``Backend``.

    ``Client()`` configures itself from the environment (``SECRETSD_ADDR``,
    ``SECRETSD_TOKEN`` / ``SECRETSD_TOKEN_FILE``, AppRole or Kubernetes login
    variables, else the file ``secretsd login`` wrote); ``addr`` and
    ``token`` (or a whole ``ClientSettings``) override it.

    Reads go through an in-process cache: an entry younger than ``cache_ttl``
    seconds is served without a round trip, an older one is revalidated with
    ``If-None-Match``, and a watched path stays current through its long-poll,
    so reading it never costs a round trip. Connection errors and 503 are
    retried with backoff (``retry``), then raised as ``secretsd.Unavailable``.
    Renewable tokens are renewed when a third of their lifetime is left
    (``auto_renew``). The versions read are reported to secretsd
    (``PUT /v1/consumers``, for ``secretsd consumers`` and ``rotate --wait``)
    from a background thread, batched and throttled; ``report_versions=False``
    (or ``SECRETSD_REPORT_VERSIONS=false``) turns that off and ``consumer``
    overrides the name (default ``pod/<ns>/<pod>/pid-<pid>`` or
    ``host/<hostname>/<pid>``). ``transport`` is httpx's seam: pass any
    ``httpx.BaseTransport`` (one that is also an ``AsyncBaseTransport``, such
    as ``httpx.MockTransport``, serves the watch loops too).
    """

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        *,
        settings: ClientSettings | None = None,
        transport: httpx.BaseTransport | None = None,
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
        self._http = httpx.Client(
            transport=transport, **http_options(self._core.settings, self._core.timeout)
        )
        self._loop: _LoopThread | None = None
        self._hub: WatchHub | None = None
        self._watch_http: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._reporter: ReportThread | None = None
        if self.reports_versions:
            reporter = ReportThread(self._core.held, weakref.WeakMethod(self._report))
            self._reporter = reporter
            self._core.on_news = reporter.wake
            weakref.finalize(self, reporter.abandon)

    def _report(self, batch: ReportBatch) -> None:
        self._run(self._core.report_op(batch, self.consumer))

    def _release(self, batch: ReportBatch) -> None:
        self._run(self._core.report_op(batch, self.consumer, final=True))

    def _run(self, op: Op[T]) -> T:
        return run_sync(op, self._http)

    # -- reading ------------------------------------------------------------------

    def get(self, ref: str | Reference) -> str:
        """The value a ``secretsd://path[?version=n]#key`` reference names.

        A binary value (not UTF-8) comes back base64-encoded; ``get_bytes``
        gives its original bytes.
        """
        return self._run(self._core.get_op(ref))

    def get_bytes(self, ref: str | Reference) -> bytes:
        """The exact bytes of a value (binary values are decoded from base64)."""
        return self._run(self._core.get_bytes_op(ref))

    def get_map(
        self, path_or_ref: str | Reference, *, version: int | None = None
    ) -> dict[str, str]:
        """Every key of a secret (``apps/web/db`` or ``secretsd://apps/web/db``).

        Values of binary keys are base64; ``read()`` says which keys those are.
        """
        return self._run(self._core.get_map_op(path_or_ref, version))

    def read(self, path: str, version: int | None = None) -> SecretVersion:
        """One version of a secret (the latest by default), with its metadata."""
        return self._run(self._core.read_op(as_path(path), version))

    def resolve(
        self, refs: Iterable[str | Reference], *, raise_errors: bool = True
    ) -> builtins.list[Resolved]:
        """Many references in one round trip, answers in order.

        The first failed reference raises its typed error, unless
        ``raise_errors=False``: then each ``Resolved`` carries its ``error``.
        """
        return self._run(self._core.resolve_op(builtins.list(refs), raise_errors=raise_errors))

    def metadata(self, path: str) -> SecretMetadata:
        return self._run(self._core.metadata_op(as_path(path)))

    def versions(self, path: str) -> tuple[VersionInfo, ...]:
        """Every version's lifecycle facts (created, deleted, destroyed)."""
        return self.metadata(path).versions

    def list(self, prefix: str = "") -> _StrList:
        """Names directly under ``prefix`` (folders end with '/')."""
        return self._run(self._core.list_op(prefix))

    def lookup_value_hashes(self, prefixes: Iterable[str]) -> set[str]:
        """Which stored values the caller may read hash (SHA-256) to something starting
        with one of ``prefixes`` (five hex digits each); the full hashes come back.

        ``secretsd scan --managed`` compares them with its candidates' hashes
        locally, so neither values nor candidates ever cross the wire.
        """
        return self._run(self._core.value_hashes_op(builtins.list(prefixes)))

    # -- writing ------------------------------------------------------------------

    def put(
        self,
        path: str,
        data: Mapping[str, str | bytes],
        *,
        cas: int | None = None,
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Write a new version (bytes that are not UTF-8 are stored as binary); its number.

        ``custom_metadata`` (e.g. provenance) is merged into the secret's custom
        metadata in the same request ('' removes a key).
        """
        return self._run(
            self._core.write_op(as_path(path), data, cas=cas, custom_metadata=custom_metadata)
        )

    def put_many(
        self, writes: Iterable[SecretWrite], *, raise_errors: bool = True
    ) -> builtins.list[Written]:
        """Many ``put`` calls in one round trip per 250 writes, answers in order.

        Each write is authorised, audited and check-and-set on its own; one that
        fails does not stop the others. The first failure raises its typed error
        (after every write was sent) unless ``raise_errors=False``: then each
        ``Written`` carries its ``error``.
        """
        return self._run(self._core.write_many_op(builtins.list(writes), raise_errors=raise_errors))

    def write(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """``Backend.write``: values already encoded, ``binary_keys`` base64."""
        return self._run(
            self._core.write_op(
                path, data, cas=cas, binary_keys=binary_keys, custom_metadata=custom_metadata
            )
        )

    def patch(
        self,
        path: str,
        changes: Mapping[str, str | bytes | None],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
    ) -> int:
        """Merge keys into the latest version (None removes a key)."""
        return self._run(
            self._core.write_op(
                as_path(path), changes, cas=cas, binary_keys=binary_keys, patch=True
            )
        )

    def update_metadata(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None = None,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        self._run(
            self._core.update_metadata_op(
                path, custom_metadata, max_versions=max_versions, cas_required=cas_required
            )
        )

    def delete(self, path: str, versions: Sequence[int] | None = None) -> None:
        """Soft-delete the latest version, or the given ones (``undelete`` restores)."""
        self._run(self._core.delete_op(as_path(path), versions))

    def undelete(self, path: str, versions: Sequence[int]) -> None:
        self._run(self._core.versions_op("undelete", as_path(path), versions))

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        """Remove the data of the given versions for good."""
        self._run(self._core.versions_op("destroy", as_path(path), versions))

    def delete_all(self, path: str) -> None:
        """Remove the secret entirely: every version and its metadata."""
        self._run(self._core.delete_all_op(as_path(path)))

    # -- tokens -------------------------------------------------------------------

    def login_approle(self, role_id: str, secret_id: str) -> TokenInfo:
        """Log in with AppRole credentials; the client uses the new token from now on."""
        return self._run(
            self._core.login_op("approle", {"role_id": role_id, "secret_id": secret_id})
        )

    def login_kubernetes(self, role: str, jwt: str) -> TokenInfo:
        """Log in with a Kubernetes service-account JWT."""
        return self._run(self._core.login_op("kubernetes", {"role": role, "jwt": jwt}))

    def token_info(self) -> TokenInfo:
        """What the service knows about the current token."""
        return self._run(self._core.token_self_op())

    def renew_token(self, increment: str | None = None) -> TokenInfo:
        return self._run(self._core.renew_op(increment))

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Call any ``/v1/...`` endpoint (e.g. ``client.request("GET", "/v1/audit")``);
        returns the JSON body. Errors are the usual classes."""
        return self._run(self._core.request_op(method, url, json=json, params=params))

    # -- watching -----------------------------------------------------------------

    def watch(self, ref: str | Reference, callback: Callable[[SecretVersion], Any]) -> Watch:
        """Call ``callback(new_version)`` each time the secret gets a new version.

        Every watcher of one path in this client shares one long-poll, which
        also keeps the path's cache entry current. Callbacks run on the
        client's watch thread: keep them short.
        """
        path = path_of(ref)
        baseline = self._run(self._core.baseline_op(path))
        loop, hub = self._ensure_hub()
        subscription = loop.call(lambda: hub.subscribe(path, baseline, callback))
        return Watch(self, subscription)

    def _ensure_hub(self) -> tuple[_LoopThread, WatchHub]:
        with self._lock:
            if self._closed:
                raise ConfigError("this Client is closed")
            if self._loop is None or self._hub is None:
                transport = self._transport
                if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
                    raise ConfigError(
                        "watching needs an async transport: pass a transport that is also an "
                        "httpx.AsyncBaseTransport, or use AsyncClient"
                    )
                loop = _LoopThread()
                options = http_options(self._core.settings, self._core.timeout)

                def build() -> httpx.AsyncClient:
                    return httpx.AsyncClient(
                        transport=transport,
                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                        **options,
                    )

                http = loop.call(build)
                self._watch_http = http
                self._hub = WatchHub(self._core, lambda op: run_async(op, http))
                self._loop = loop
            return self._loop, self._hub

    def _unsubscribe(self, subscription: Subscription) -> None:
        loop, hub = self._loop, self._hub
        if loop is None or hub is None or not subscription.active:
            subscription.active = False
            return
        loop.call(lambda: hub.unsubscribe(subscription))

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Stop every watch, withdraw this process's version reports, close connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, hub, http = self._loop, self._hub, self._watch_http
        if loop is not None and hub is not None and http is not None:

            async def shutdown() -> None:
                await hub.close()
                await http.aclose()

            if threading.current_thread() is loop.thread:
                # Closed from a watch callback: finish on the loop, do not wait for it.
                task = loop.loop.create_task(shutdown())
                task.add_done_callback(lambda _: loop.loop.stop())
            else:
                loop.run(shutdown(), timeout=10)
                loop.stop()
        if self._reporter is not None:
            self._reporter.close(self._release)
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


if TYPE_CHECKING:
    from secretsd.backends.base import Backend

    def _client_is_a_backend(client: Client) -> Backend:
        return client  # strict mypy proves Client implements the Backend protocol
