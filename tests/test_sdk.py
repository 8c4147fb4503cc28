"""The Python SDK against the real service and a real OpenBao."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import secretsd
from secretsd.backends.base import Backend
from secretsd.client import AsyncClient, Client, Retry
from secretsd.client._effects import HttpResponse, TransportFailure
from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer

# The service keeps a long-poll waiting after its client went away, and a
# stopping test server waits for it: watching tests poll in short rounds.
WAIT = 1.0


class Counting(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """httpx's transport seam: the real network, every request counted.

    Sync and async, so a Client's watch loops use it too; written values and
    error bodies feed the suite's canary (tests/conftest.py), which checks at
    the end that no value leaked into a log, an error body or an audit row.
    """

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.inner_async = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.reports: list[httpx.Request] = []

    def _counted(self, request: httpx.Request) -> bool:
        """Version reports (``PUT /v1/consumers``) go out from a background thread at
        times of their own: counted apart, so round-trip counts stay exact."""
        if request.url.path == "/v1/consumers":
            self.reports.append(request)
            return False
        self.requests.append(request)
        return True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        counted = self._counted(request)
        CANARY.note_request(request)
        response = self.inner.handle_request(request)
        if counted:
            self.statuses.append(response.status_code)
        CANARY.note_response(httpx.Response(response.status_code, content=response.read(),
                                            request=request))  # fmt: skip
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        counted = self._counted(request)
        CANARY.note_request(request)
        response = await self.inner_async.handle_async_request(request)
        if counted:
            self.statuses.append(response.status_code)
        content = await response.aread()
        CANARY.note_response(httpx.Response(response.status_code, content=content, request=request))
        return response

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner_async.aclose()


@pytest.fixture
def client(server: RunningServer) -> Any:
    with Client(server.url, ADMIN_TOKEN, watch_wait=WAIT, transport=Counting()) as sdk:
        yield sdk


def test_round_trip(client: Client) -> None:
    version = client.put("apps/web/db", {"password": "pw-1", "user": "web"})
    assert version == 1
    assert client.get("secretsd://apps/web/db#password") == "pw-1"
    assert client.get_map("apps/web/db") == {"password": "pw-1", "user": "web"}
    assert client.get_map("secretsd://apps/web/db") == {"password": "pw-1", "user": "web"}
    assert client.put("apps/web/db", {"password": "pw-2"}, cas=1) == 2
    assert client.get("secretsd://apps/web/db#password") == "pw-2"
    assert client.get("secretsd://apps/web/db?version=1#user") == "web"
    assert client.get_map("apps/web/db", version=1)["password"] == "pw-1"
    assert client.patch("apps/web/db", {"user": "web2"}) == 3
    assert client.patch("apps/web/db", {"user": None}) == 4
    assert client.get_map("apps/web/db") == {"password": "pw-2"}

    assert client.list() == ["apps/"]
    assert client.list("apps") == ["web/"]
    assert client.list("apps/web/") == ["db"]
    versions = client.versions("apps/web/db")
    assert [v.version for v in versions] == [1, 2, 3, 4]

    client.delete("apps/web/db")
    with pytest.raises(secretsd.NotFound):
        client.get("secretsd://apps/web/db#password")
    client.undelete("apps/web/db", [4])
    assert client.get("secretsd://apps/web/db#password") == "pw-2"
    client.destroy("apps/web/db", [1])
    assert client.metadata("apps/web/db").version_info(1).destroyed  # type: ignore[union-attr]
    client.update_metadata("apps/web/db", {"owner": "team-web"})
    assert client.read("apps/web/db").custom_metadata["owner"] == "team-web"
    client.delete_all("apps/web/db")
    with pytest.raises(secretsd.NotFound):
        client.metadata("apps/web/db")


def test_binary_values_come_back_as_the_original_bytes(client: Client) -> None:
    blob = bytes(range(256)) * 3
    client.put("apps/web/keystore", {"jks": blob, "alias": "web"})
    assert client.get_bytes("secretsd://apps/web/keystore#jks") == blob
    assert client.get_bytes("secretsd://apps/web/keystore#alias") == b"web"
    secret = client.read("apps/web/keystore")
    assert secret.binary_keys == frozenset({"jks"})
    assert secret.value_bytes("jks") == blob
    [resolved] = client.resolve(["secretsd://apps/web/keystore#jks"])
    assert resolved.binary and resolved.value_bytes() == blob


def test_resolve_is_one_round_trip_and_answers_in_order(server: RunningServer) -> None:
    counting = Counting()
    with Client(server.url, ADMIN_TOKEN, transport=counting, auto_renew=False) as sdk:
        sdk.put("apps/a", {"k": "va"})
        sdk.put("apps/b", {"k": "vb", "j": "vj"})
        before = len(counting.requests)
        results = sdk.resolve(["secretsd://apps/b#j", "secretsd://apps/a#k", "secretsd://apps/b"])
        assert len(counting.requests) == before + 1
        assert [r.value for r in results[:2]] == ["vj", "va"]
        assert results[2].data == {"k": "vb", "j": "vj"}
        assert results[0].version == 1 and results[0].path == "apps/b"

        with pytest.raises(secretsd.NotFound):
            sdk.resolve(["secretsd://apps/a#k", "secretsd://apps/missing#k"])
        answers = sdk.resolve(["secretsd://apps/a#k", "secretsd://apps/a#nope"], raise_errors=False)
        assert answers[0].ok and answers[0].value == "va"
        assert isinstance(answers[1].error, secretsd.NotFound)

        # References whose secret is fresh in the cache cost no round trip.
        sdk.get_map("apps/a")
        before = len(counting.requests)
        assert sdk.resolve(["secretsd://apps/a#k"])[0].value == "va"
        assert len(counting.requests) == before


def test_errors_are_the_one_hierarchy(server: RunningServer, client: Client) -> None:
    client.put("apps/web/db", {"password": "pw"})
    with pytest.raises(secretsd.InvalidReference, match="does not start with 'secretsd://'"):
        client.get("apps/web/db#password")
    with pytest.raises(secretsd.InvalidReference, match="names a whole secret"):
        client.get("secretsd://apps/web/db")
    with pytest.raises(secretsd.InvalidPath):
        client.get_map("apps//db")
    with pytest.raises(secretsd.NotFound, match="no key 'nope'"):
        client.get("secretsd://apps/web/db#nope")
    with pytest.raises(secretsd.NotFound):
        client.get("secretsd://apps/other#x")
    with pytest.raises(secretsd.CasMismatch):
        client.put("apps/web/db", {"password": "x"}, cas=0)

    with (
        Client(server.url, "sdt_not-a-real-token-at-all") as stranger,
        pytest.raises(secretsd.Unauthenticated, match="credentials from argument"),
    ):
        stranger.get("secretsd://apps/web/db#password")
    nobody = server.state.tokens.create(policies=[], display_name="nobody")
    with Client(server.url, nobody.token, auto_renew=False) as limited:
        with pytest.raises(secretsd.Forbidden):
            limited.get("secretsd://apps/web/db#password")
        with pytest.raises(secretsd.Forbidden):
            limited.put("apps/web/db", {"password": "x"})
    # Every SDK error is also a SecretsdError with the CLI's exit code.
    assert issubclass(secretsd.Forbidden, secretsd.SecretsdError)


def test_cache_serves_fresh_reads_and_revalidates_with_if_none_match(
    server: RunningServer,
) -> None:
    counting = Counting()
    with Client(
        server.url, ADMIN_TOKEN, transport=counting, cache_ttl=0.3, auto_renew=False
    ) as sdk:
        sdk.put("apps/cached", {"k": "v1"})
        assert sdk.get("secretsd://apps/cached#k") == "v1"
        before = len(counting.requests)
        for _ in range(100):
            assert sdk.get("secretsd://apps/cached#k") == "v1"
        assert len(counting.requests) == before, "fresh reads must not touch the network"
        time.sleep(0.35)
        assert sdk.get("secretsd://apps/cached#k") == "v1"
        assert counting.requests[-1].headers["if-none-match"] == '"1"'
        assert counting.statuses[-1] == 304
        # A write by someone else is seen at the next revalidation.
        with Client(server.url, ADMIN_TOKEN) as other:
            other.put("apps/cached", {"k": "v2"})
        time.sleep(0.35)
        assert sdk.get("secretsd://apps/cached#k") == "v2"
        assert counting.statuses[-1] == 200


def test_watch_learns_of_a_change_made_by_another_client(server: RunningServer) -> None:
    counting = Counting()
    with (
        Client(server.url, ADMIN_TOKEN, auto_renew=False) as writer,
        Client(
            server.url, ADMIN_TOKEN, transport=counting, auto_renew=False, watch_wait=WAIT
        ) as reader,
    ):
        writer.put("apps/watched", {"k": "v1"})
        seen: list[tuple[int, str]] = []
        arrived = threading.Event()

        def on_change(secret: secretsd.client.SecretVersion) -> None:
            seen.append((secret.version, secret.data["k"]))
            arrived.set()

        watch = reader.watch("secretsd://apps/watched#k", on_change)
        time.sleep(0.2)  # the long-poll is in flight
        started = time.monotonic()
        writer.put("apps/watched", {"k": "v2"})
        assert arrived.wait(5)
        assert time.monotonic() - started < 1.0
        assert seen == [(2, "v2")]
        # The cache was updated by the long-poll: no round trip to read it.
        before = len(counting.requests)
        assert reader.get("secretsd://apps/watched#k") == "v2"
        assert len(counting.requests) == before
        watch.stop()
        assert not watch.active
        writer.put("apps/watched", {"k": "v3"})
        time.sleep(0.3)
        assert seen == [(2, "v2")], "no callback after stop()"


def test_many_watchers_of_one_path_share_one_long_poll(server: RunningServer) -> None:
    with (
        Client(server.url, ADMIN_TOKEN, auto_renew=False) as writer,
        Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=WAIT) as reader,
    ):
        writer.put("apps/shared", {"k": "v1"})
        calls: list[int] = []
        lock = threading.Lock()
        done = threading.Event()

        def on_change(secret: secretsd.client.SecretVersion) -> None:
            with lock:
                calls.append(secret.version)
                if len(calls) == 200:
                    done.set()

        watches = [reader.watch("apps/shared", on_change) for _ in range(200)]
        assert reader._hub is not None and reader._hub.watched_paths == 1
        time.sleep(0.2)
        assert server.state.watch.watched_paths == 1
        writer.put("apps/shared", {"k": "v2"})
        assert done.wait(5)
        assert calls == [2] * 200
        assert reader._hub.polls == 1, "200 watchers, one long-poll answered"
        for watch in watches:
            watch.stop()
        assert reader._hub.watched_paths == 0


def test_a_secret_created_after_the_watch_started_is_delivered(client: Client) -> None:
    got = threading.Event()
    client.watch("apps/later", lambda secret: got.set())
    time.sleep(0.1)
    with Client(client.addr, ADMIN_TOKEN) as other:
        other.put("apps/later", {"k": "v"})
    assert got.wait(5)


def test_close_stops_watches_at_once(server: RunningServer) -> None:
    sdk = Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=WAIT)
    sdk.put("apps/closing", {"k": "v"})
    watch = sdk.watch("apps/closing", lambda secret: None)
    time.sleep(0.1)
    started = time.monotonic()
    sdk.close()
    assert time.monotonic() - started < 2
    assert not watch.active


def test_async_client_round_trip_watch_and_iterator(server: RunningServer) -> None:
    async def scenario() -> None:
        async with (
            AsyncClient(server.url, ADMIN_TOKEN, watch_wait=WAIT) as sdk,
            AsyncClient(server.url, ADMIN_TOKEN) as writer,
        ):
            assert await sdk.put("apps/async", {"k": "v1", "bin": b"\xff\x00"}) == 1
            assert await sdk.get("secretsd://apps/async#k") == "v1"
            assert await sdk.get_bytes("secretsd://apps/async#bin") == b"\xff\x00"
            assert (await sdk.get_map("apps/async"))["k"] == "v1"
            [one] = await sdk.resolve(["secretsd://apps/async#k"])
            assert one.value == "v1"
            assert await sdk.list("apps") == ["async"]
            with pytest.raises(secretsd.NotFound):
                await sdk.get("secretsd://apps/none#k")

            seen: list[int] = []
            callback_seen = asyncio.Event()

            async def on_change(secret: secretsd.client.SecretVersion) -> None:
                seen.append(secret.version)
                callback_seen.set()

            watch = await sdk.watch("apps/async", on_change)
            async with sdk.changes("secretsd://apps/async#k") as changes:
                await writer.put("apps/async", {"k": "v2"})
                secret = await asyncio.wait_for(changes.__anext__(), 5)
                assert (secret.version, secret.data["k"]) == (2, "v2")
                await asyncio.wait_for(callback_seen.wait(), 5)
                assert seen == [2]
                assert await sdk.get("secretsd://apps/async#k") == "v2"
            watch.stop()
            assert sdk._hub.watched_paths == 0

            # An iterator ends when the client closes.
            iterator = sdk.changes("apps/async")
            reader = asyncio.ensure_future(iterator.__anext__())
            await asyncio.sleep(0.1)
            await sdk.aclose()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(reader, 5)

    asyncio.run(scenario())


def test_the_client_is_a_backend(client: Client) -> None:
    backend: Backend = client  # mypy checks the protocol; this checks it at run time
    version = backend.write("apps/backend", {"k": "v"})
    assert backend.read("apps/backend").data == {"k": "v"}
    assert backend.read("apps/backend", version).version == version
    assert backend.patch("apps/backend", {"k": None, "j": "w"}) == 2
    assert backend.list("apps") == ["backend"]
    assert backend.metadata("apps/backend").current_version == 2
    backend.delete("apps/backend", [2])
    backend.undelete("apps/backend", [2])
    backend.destroy("apps/backend", [1])
    backend.delete_all("apps/backend")


def test_configured_from_the_environment(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    monkeypatch.setenv("SECRETSD_ADDR", server.url)
    monkeypatch.setenv("SECRETSD_TOKEN_FILE", str(token_file))
    monkeypatch.delenv("SECRETSD_TOKEN", raising=False)
    with Client() as sdk:
        sdk.put("apps/env", {"k": "v"})
        assert sdk.get("secretsd://apps/env#k") == "v"
        assert sdk.settings.credential_kind == "token_file"
    monkeypatch.delenv("SECRETSD_TOKEN_FILE")
    monkeypatch.setenv("SECRETSD_TOKEN", ADMIN_TOKEN)
    with Client() as sdk:
        assert sdk.get("secretsd://apps/env#k") == "v"


def test_no_credentials_is_a_clear_error(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SECRETSD_TOKEN", "SECRETSD_TOKEN_FILE", "SECRETSD_ROLE_ID", "SECRETSD_K8S_ROLE"):
        monkeypatch.delenv(name, raising=False)
    with Client(server.url) as sdk, pytest.raises(secretsd.Unauthenticated, match="secretsd login"):
        sdk.get("secretsd://apps/x#k")


def test_reprs_never_show_tokens_or_values(client: Client) -> None:
    client.put("apps/masked", {"k": "super-secret-value"})
    shown = [
        repr(client),
        repr(client.settings),
        repr(client.read("apps/masked")),
        repr(client.resolve(["secretsd://apps/masked#k"])),
        repr(client.resolve(["secretsd://apps/masked"])),
    ]
    for text in shown:
        assert ADMIN_TOKEN not in text
        assert "super-secret-value" not in text


def test_retries_ride_out_a_restart_then_fail_typed(server_factory: Any, tmp_path: Path) -> None:
    first: RunningServer = server_factory(max_wait=1.0)
    port = int(first.url.rsplit(":", 1)[1])
    seen: list[int] = []
    delivered = threading.Event()

    def on_change(secret: secretsd.client.SecretVersion) -> None:
        seen.append(secret.version)
        delivered.set()

    with (
        Client(first.url, ADMIN_TOKEN, auto_renew=False, cache_ttl=0) as sdk,
        Client(first.url, ADMIN_TOKEN, auto_renew=False, watch_wait=WAIT) as watcher,
    ):
        sdk.put("apps/restart", {"k": "before"})
        watcher.watch("apps/restart", on_change)
        first.stop()
        restarted: list[RunningServer] = []

        def restart() -> None:
            time.sleep(1.0)
            restarted.append(start_on_port(first.settings, port))

        thread = threading.Thread(target=restart)
        thread.start()
        started = time.monotonic()
        # Issued while the server is down: retried with backoff until it is back.
        assert sdk.get("secretsd://apps/restart#k") == "before"
        assert time.monotonic() - started >= 0.9
        thread.join()
        assert sdk.put("apps/restart", {"k": "after"}) == 2
        # The watch came back by itself and saw the write made after the restart.
        assert delivered.wait(10)
        assert seen == [2]
        assert watcher.get("secretsd://apps/restart#k") == "after"
    restarted[0].stop()

    with (
        Client(
            first.url, ADMIN_TOKEN, auto_renew=False, retry=Retry(attempts=3, backoff=0.05)
        ) as sdk,
        pytest.raises(secretsd.Unavailable, match="cannot reach secretsd"),
    ):
        sdk.get("secretsd://apps/restart#k")


def test_no_value_or_token_in_the_sdk_logs(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    sentinel = "canary-value-7f3a9c"
    caplog.set_level(logging.DEBUG)
    with Client(server.url, ADMIN_TOKEN, cache_ttl=0, watch_wait=WAIT) as sdk:
        sdk.put("apps/canary", {"k": sentinel})
        arrived = threading.Event()
        sdk.watch("apps/canary", lambda secret: arrived.set())
        sdk.put("apps/canary", {"k": sentinel + "-2"})
        assert arrived.wait(5)
        assert sdk.get("secretsd://apps/canary#k") == sentinel + "-2"
        sdk.resolve(["secretsd://apps/canary#k", "secretsd://apps/canary"])
        with pytest.raises(secretsd.NotFound) as missing:
            sdk.get("secretsd://apps/canary#nope")
        assert sentinel not in str(missing.value)
    with Client(server.url, "sdt_canary-bad-token", retry=Retry(attempts=2, backoff=0.01)) as bad:
        with pytest.raises(secretsd.Unauthenticated) as refused:
            bad.get("secretsd://apps/canary#k")
        assert "sdt_canary-bad-token" not in str(refused.value)
    logged = caplog.text
    assert sentinel not in logged
    assert ADMIN_TOKEN not in logged and "sdt_canary-bad-token" not in logged


def start_on_port(settings: Any, port: int) -> RunningServer:
    """Like conftest.start_server, on a given port (the same address comes back)."""
    import uvicorn

    from secretsd.server.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", settings, ADMIN_TOKEN, app, server, thread)


def test_async_client_against_the_app_in_process(
    tmp_path: Path, bao: Any, vault_prefix: str
) -> None:
    """httpx's transport seam: the SDK talks to the ASGI app directly, no socket."""
    from secretsd.server.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, bao, vault_prefix, max_wait=2.0))

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with (
                AsyncClient("http://secretsd.test", ADMIN_TOKEN, transport=transport) as sdk,
                AsyncClient("http://secretsd.test", ADMIN_TOKEN, transport=transport) as other,
            ):
                await sdk.put("apps/inproc", {"k": "v1"})
                assert await sdk.get("secretsd://apps/inproc#k") == "v1"
                async with sdk.changes("apps/inproc") as changes:
                    await other.put("apps/inproc", {"k": "v2"})
                    secret = await asyncio.wait_for(changes.__anext__(), 5)
                assert secret.data["k"] == "v2"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("idempotent", "outcome", "retried"),
    [
        (True, HttpResponse(503, {}, b""), True),
        (False, HttpResponse(503, {}, b""), False),  # a write may have landed
        (True, HttpResponse(500, {}, b""), False),
        (True, HttpResponse(404, {}, b""), False),
        (False, TransportFailure("ConnectError", "refused", sent=False), True),
        (True, TransportFailure("ReadError", "reset", sent=True), True),
        (False, TransportFailure("ReadError", "reset", sent=True), False),
    ],
)
def test_retry_decisions(idempotent: bool, outcome: Any, retried: bool) -> None:
    policy = Retry(attempts=3)
    assert policy.should_retry(idempotent, outcome, 1) is retried
    assert policy.should_retry(idempotent, outcome, 3) is False
    assert 0.1 <= policy.delay(1) <= 0.11 and policy.delay(10) <= 2.2


def test_a_callback_may_stop_its_watch_or_close_its_client(server: RunningServer) -> None:
    with Client(server.url, ADMIN_TOKEN, auto_renew=False) as writer:
        writer.put("apps/selfstop", {"k": "v1"})
        reader = Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=WAIT)
        calls: list[int] = []
        done = threading.Event()
        holder: list[Any] = []

        def stop_itself(secret: secretsd.client.SecretVersion) -> None:
            calls.append(secret.version)
            holder[0].stop()
            reader.close()
            done.set()

        holder.append(reader.watch("apps/selfstop", stop_itself))
        time.sleep(0.1)
        writer.put("apps/selfstop", {"k": "v2"})
        assert done.wait(5)
        writer.put("apps/selfstop", {"k": "v3"})
        time.sleep(0.3)
        assert calls == [2]
        assert reader._loop is not None
        reader._loop.thread.join(5)
        assert not reader._loop.thread.is_alive()


def test_the_sdk_public_names_are_pinned() -> None:
    import secretsd.client

    assert sorted(secretsd.client.__all__) == [
        "AsyncClient",
        "AsyncWatch",
        "Changes",
        "Client",
        "ClientSettings",
        "Resolved",
        "Retry",
        "SecretMetadata",
        "SecretVersion",
        "SecretWrite",
        "TokenInfo",
        "VersionInfo",
        "Watch",
        "Written",
        "consumer_name",
        "load_client_settings",
    ]
    assert secretsd.Client is secretsd.client.Client
    assert secretsd.AsyncClient is secretsd.client.AsyncClient
