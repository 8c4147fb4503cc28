"""The public SDK is enough for every tool (issue 9, item 3), against the real service.

Importers need check-and-set writes, provenance in custom metadata, binary
values, listings and version history; the agent needs logins, batch resolve and
the long-poll; the scanner needs the value-hash lookup. All of it through
``secretsd.Client`` / ``secretsd.AsyncClient``, their settings loader and the one
error hierarchy, whose HTTP-status mapping is derived once from
``secretsd/errors.py``.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import http.server
import inspect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import secretsd
from secretsd import errors
from secretsd.client import AsyncClient, Client, Retry
from tests.conftest import (
    ADMIN_TOKEN,
    CANARY,
    RunningServer,
    make_settings,
    secretsd_executable,
    self_signed_certificate,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0) as sdk:
        yield sdk


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- what importers need ----------------------------------------------------------------


def test_check_and_set_writes(client: Client) -> None:
    assert client.put("imports/app/db", {"password": "pw-cas-1"}, cas=0) == 1  # create only
    with pytest.raises(secretsd.CasMismatch) as exists:
        client.put("imports/app/db", {"password": "pw-cas-x"}, cas=0)
    assert isinstance(exists.value, secretsd.Conflict) and exists.value.exit_code == 5
    assert client.put("imports/app/db", {"password": "pw-cas-2"}, cas=1) == 2
    with pytest.raises(secretsd.CasMismatch):
        client.put("imports/app/db", {"password": "pw-cas-x"}, cas=1)  # stale
    with pytest.raises(secretsd.CasMismatch):
        client.patch("imports/app/db", {"user": "web"}, cas=1)
    assert client.patch("imports/app/db", {"user": "web"}, cas=2) == 3
    # A secret that demands check-and-set refuses a blind write.
    client.update_metadata("imports/app/db", cas_required=True)
    assert client.metadata("imports/app/db").cas_required
    with pytest.raises(secretsd.SecretsdError):
        client.put("imports/app/db", {"password": "pw-cas-x"})
    assert client.get("secretsd://imports/app/db#password") == "pw-cas-2"


def test_provenance_in_custom_metadata(client: Client) -> None:
    client.put("imports/app/api", {"key": "api-key-1"})
    provenance = {"imported-from": "vault:kv/app/api", "imported-at": "2026-11-26T10:00:00Z"}
    client.update_metadata("imports/app/api", provenance)
    assert dict(client.metadata("imports/app/api").custom_metadata) == provenance
    client.invalidate()
    assert dict(client.read("imports/app/api").custom_metadata) == provenance
    client.update_metadata("imports/app/api", {"imported-at": ""})  # "" removes a key
    assert dict(client.metadata("imports/app/api").custom_metadata) == {
        "imported-from": "vault:kv/app/api"
    }


def test_binary_values_every_way_in(client: Client) -> None:
    keystore = bytes(range(256))
    client.put("imports/app/tls", {"keystore": keystore, "alias": b"web"})
    assert client.read("imports/app/tls").binary_keys == frozenset({"keystore"})
    assert client.get_bytes("secretsd://imports/app/tls#keystore") == keystore
    assert client.get("secretsd://imports/app/tls#alias") == "web"  # UTF-8 bytes stay text
    # Backend.write: values already encoded, binary keys named (an importer's path).
    import base64

    encoded = base64.b64encode(keystore[::-1]).decode()
    client.write("imports/app/tls2", {"jks": encoded}, binary_keys=frozenset({"jks"}))
    assert client.get_bytes("secretsd://imports/app/tls2#jks") == keystore[::-1]
    # PATCH with bytes adds a binary key and keeps the others.
    client.patch("imports/app/tls", {"p12": b"\xff\xfe\x00"})
    latest = client.read("imports/app/tls")
    assert latest.binary_keys >= {"keystore", "p12"}
    assert latest.value_bytes("p12") == b"\xff\xfe\x00"
    assert latest.value_bytes("keystore") == keystore


def test_listing_and_version_history(client: Client) -> None:
    for path in ("imports/a/one", "imports/a/two", "imports/b/deep/three"):
        client.put(path, {"k": "v-list"})
    assert client.list("imports") == ["a/", "b/"]
    assert client.list("imports/a") == ["one", "two"]
    assert client.list("secretsd://imports/b") == ["deep/"]
    client.put("imports/a/one", {"k": "v-list-2"})
    client.put("imports/a/one", {"k": "v-list-3"})
    client.delete("imports/a/one", [2])
    client.destroy("imports/a/one", [1])
    states = {v.version: (v.deleted, v.destroyed) for v in client.versions("imports/a/one")}
    assert states == {1: (False, True), 2: (True, False), 3: (False, False)}
    assert client.metadata("imports/a/one").current_version == 3
    with pytest.raises(secretsd.NotFound):
        client.read("imports/a/one", 2)


def test_the_long_poll_watch_sync_and_async(server: RunningServer, client: Client) -> None:
    client.put("agent/app", {"k": "v-watch-1"})
    seen: list[int] = []
    arrived = threading.Event()

    def on_change(secret: secretsd.client.SecretVersion) -> None:
        seen.append(secret.version)
        arrived.set()

    with client.watch("secretsd://agent/app#k", on_change):
        client.put("agent/app", {"k": "v-watch-2"})
        assert arrived.wait(10)
    assert seen == [2]

    async def scenario() -> list[int]:
        async with (
            AsyncClient(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0) as aio,
            aio.changes("agent/app") as changes,
        ):
            await aio.put("agent/app", {"k": "v-watch-3"})
            secret = await asyncio.wait_for(changes.__anext__(), 10)
            return [secret.version]

    assert asyncio.run(scenario()) == [3]


# -- what the scanner needs ------------------------------------------------------------------


def test_value_hash_lookup_sync_and_async(server: RunningServer, client: Client) -> None:
    stored = "corp-internal-surface-7f1"
    client.put("apps/scan", {"k": stored})
    assert sha(stored) in client.lookup_value_hashes([sha(stored)[:5], "00000"])

    async def lookup() -> set[str]:
        async with AsyncClient(server.url, ADMIN_TOKEN, auto_renew=False) as aio:
            return await aio.lookup_value_hashes([sha(stored)[:5]])

    assert sha(stored) in asyncio.run(lookup())
    nobody = server.state.tokens.create(policies=[], display_name="nobody")
    with Client(server.url, nobody.token, auto_renew=False) as limited:
        assert sha(stored) not in limited.lookup_value_hashes([sha(stored)[:5]])
    with pytest.raises(secretsd.ValidationFailed):
        client.lookup_value_hashes(["NOT-HEX"])


# -- one surface, sync and async ------------------------------------------------------------


def _public(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_sync_and_async_clients_offer_the_same_operations() -> None:
    sync_only = {"close"}  # AsyncClient: aclose
    async_only = {"aclose", "changes"}  # Client: watch callbacks on its thread
    assert _public(Client) - sync_only == _public(AsyncClient) - async_only
    for name in _public(Client) - sync_only - {"addr", "settings", "invalidate", "consumer"}:
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        sync_params = list(inspect.signature(getattr(Client, name)).parameters)
        async_params = list(inspect.signature(getattr(AsyncClient, name)).parameters)
        assert sync_params == async_params, name


def test_nothing_outside_the_sdk_imports_its_private_modules() -> None:
    offenders = []
    for path in [*ROOT.glob("secretsd/**/*.py"), *ROOT.glob("scanners/**/*.py"),
                 *ROOT.glob("migrations/**/*.py")]:  # fmt: skip
        if path.is_relative_to(ROOT / "secretsd" / "client"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.startswith("secretsd.client._") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# -- one status -> error mapping -------------------------------------------------------------


def test_the_status_mapping_is_derived_from_the_hierarchy() -> None:
    for cls in (getattr(errors, name) for name in errors.__all__ if name[0].isupper()):
        mapped = errors.error_class_for_status(cls.http_status)
        assert issubclass(cls, mapped)  # the most general class of that status
        if cls is not errors.OutcomeUnknown:  # 504: a bare gateway 504 is just Unavailable
            assert mapped.http_status == cls.http_status
    assert errors.error_class_for_status(400) is errors.InvalidInput
    assert errors.error_class_for_status(409) is errors.Conflict
    assert errors.error_class_for_status(503) is errors.Unavailable
    assert errors.error_class_for_status(502) is errors.Unavailable  # a gateway
    assert errors.error_class_for_status(504) is errors.Unavailable
    assert errors.error_class_for_status(418) is errors.SecretsdError


def test_there_is_no_other_status_table() -> None:
    """The four tables (service, SDK, scanner, CLI) are gone; none may come back."""
    statuses = {400, 401, 403, 404, 405, 409, 413, 422, 502, 503, 504}
    tables = []
    for path in [*ROOT.glob("secretsd/**/*.py"), *ROOT.glob("scanners/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if len(keys & statuses) >= 3:
                    tables.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert tables == []


def test_the_service_answers_framework_errors_with_the_derived_codes(admin: httpx.Client) -> None:
    not_allowed = admin.post("/v1/metadata")
    assert not_allowed.status_code == 405
    assert not_allowed.json()["error"]["code"] == errors.MethodNotAllowed.code
    unknown = admin.get("/v1/no-such-endpoint")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == errors.NotFound.code


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A real HTTP server answering like a reverse proxy: plain text, no JSON error body."""

    def _answer(self) -> None:
        status = int(self.path.strip("/").split("/")[1])  # /v1/<status>/...
        body = b"<html>upstream says no</html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def test_the_sdk_maps_bare_statuses_like_the_service(tmp_path: Path) -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        with Client(url, "sdt_any", auto_renew=False, retry=Retry(attempts=1)) as sdk:
            for status, cls in (
                (400, errors.InvalidInput),
                (401, errors.Unauthenticated),
                (403, errors.Forbidden),
                (404, errors.NotFound),
                (409, errors.Conflict),
                (413, errors.PayloadTooLarge),
                (502, errors.Unavailable),
                (503, errors.Unavailable),
                (504, errors.Unavailable),
                (418, errors.SecretsdError),
            ):
                with pytest.raises(errors.SecretsdError) as raised:
                    sdk.request("GET", f"/v1/{status}/x")
                assert type(raised.value) is cls, status
                assert f"HTTP {status}" in raised.value.message
    finally:
        proxy.shutdown()
        proxy.server_close()


# -- login uses the SDK's settings loader (SECRETSD_CACERT) -----------------------------------


def test_login_honours_secretsd_cacert(tmp_path: Path, bao: Any, vault_prefix: str) -> None:
    import os
    import subprocess

    cert_file, key_file = self_signed_certificate(tmp_path)
    server = start_server(make_settings(tmp_path, bao, vault_prefix), tls=(cert_file, key_file))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
        env.update(SECRETSD_ADDR=server.url, XDG_CONFIG_HOME=str(tmp_path / "config"))

        def secretsd_cli(*args: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
            result = subprocess.run(
                [secretsd_executable(), *args],
                input=ADMIN_TOKEN.encode() + b"\n",
                capture_output=True,
                env={**env, **extra},
                timeout=60,
            )
            CANARY.texts.append(("stderr of secretsd login", result.stderr.decode()))
            return result

        untrusted = secretsd_cli("login")
        assert untrusted.returncode == 2 and b"SECRETSD_CACERT" in untrusted.stderr
        logged = secretsd_cli("login", SECRETSD_CACERT=str(cert_file))
        assert logged.returncode == 0, logged.stderr
        assert f"Logged in to {server.url}".encode() in logged.stderr
        # The stored login works for the next command (no token in the environment).
        listed = secretsd_cli("ls", SECRETSD_CACERT=str(cert_file))
        assert listed.returncode == 0, listed.stderr
    finally:
        server.stop()
