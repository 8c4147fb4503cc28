"""The HTTP edge: forwarded-address trust, security headers, docs assets, bodies, rate limits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Bao, RunningServer, free_port
from tests.test_api import error_of
from tests.test_processes import admin as admin_client
from tests.test_processes import processes, serve, wait_ready

__all__ = ["processes"]  # the fixture, re-used


def _approle(admin: httpx.Client, name: str, cidrs: list[str]) -> tuple[str, str]:
    role = admin.put(f"/v1/auth/approle/roles/{name}", json={"bound_cidrs": cidrs})
    assert role.status_code == 200, role.text
    issued = admin.post(f"/v1/auth/approle/roles/{name}/secret-ids", json={})
    return role.json()["role_id"], issued.json()["secret_id"]


def _login_clients(admin: httpx.Client) -> list[str]:
    records = admin.get("/v1/audit", params={"action": "login"}).json()["records"]
    return [r["client"] for r in records]


# -- X-Forwarded-For ------------------------------------------------------------------


def _serve(tmp_path: Path, bao: Bao, prefix: str, name: str, **env: str) -> tuple[Any, str]:
    port = free_port()
    process = serve(
        tmp_path,
        name,
        port,
        "--data-dir",
        str(tmp_path / name),
        "--workers",
        "1",
        SECRETSD_VAULT_ADDR=bao.addr,
        SECRETSD_VAULT_TOKEN=bao.root_token,
        SECRETSD_VAULT_PREFIX=prefix,
        **env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, tmp_path / f"{name}.log")
    return process, url


@pytest.mark.slow
def test_forged_forwarded_for_from_loopback_does_not_pass_a_cidr_binding(
    tmp_path: Path, bao: Bao, vault_prefix: str, processes: list[subprocess.Popen[str]]
) -> None:
    process, url = _serve(tmp_path, bao, vault_prefix, "plain")
    processes.append(process)
    with admin_client(url) as admin:
        role_id, secret_id = _approle(admin, "ci", ["10.0.0.0/8"])
        body = {"role_id": role_id, "secret_id": secret_id}
        for header in ("10.1.2.3", "10.1.2.3, 127.0.0.1"):
            forged = httpx.post(
                f"{url}/v1/auth/approle/login", json=body, headers={"X-Forwarded-For": header}
            )
            assert forged.status_code == 401, forged.text
        assert set(_login_clients(admin)) == {"127.0.0.1"}  # the real peer, not the forgery


@pytest.mark.slow
def test_forwarded_for_is_believed_from_a_configured_proxy_only(
    tmp_path: Path, bao: Bao, vault_prefix: str, processes: list[subprocess.Popen[str]]
) -> None:
    process, url = _serve(
        tmp_path, bao, vault_prefix, "proxied", SECRETSD_TRUSTED_PROXIES="127.0.0.1,192.168.0.0/16"
    )
    processes.append(process)
    with admin_client(url) as admin:
        role_id, secret_id = _approle(admin, "ci", ["10.0.0.0/8"])
        body = {"role_id": role_id, "secret_id": secret_id}
        # Right to left: 192.168.1.1 is a trusted hop too, so the client is 10.1.2.3.
        via_proxy = httpx.post(
            f"{url}/v1/auth/approle/login",
            json=body,
            headers={"X-Forwarded-For": "6.6.6.6, 10.1.2.3, 192.168.1.1"},
        )
        assert via_proxy.status_code == 200, via_proxy.text
        outside = httpx.post(
            f"{url}/v1/auth/approle/login",
            json=body,
            headers={"X-Forwarded-For": "10.1.2.3, 8.8.8.8"},
        )
        assert outside.status_code == 401
        garbage = httpx.post(
            f"{url}/v1/auth/approle/login", json=body, headers={"X-Forwarded-For": "x" * 300}
        )
        assert garbage.status_code == 400
        assert "X-Forwarded-For" in error_of(garbage)["message"]
        assert _login_clients(admin) == ["10.1.2.3", "8.8.8.8"]


# -- headers --------------------------------------------------------------------------

SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy")


def _assert_secure(response: httpx.Response) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, (response.request.url.path, name)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_every_answer_carries_security_headers_and_secrets_are_no_store(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put("/v1/secrets/apps/h", json={"data": {"k": "header-value-1"}})
    role_id, secret_id = _approle(admin, "h", [])
    no_store = [
        admin.get("/v1/secrets/apps/h"),  # the fast path
        admin.get("/v1/secrets/apps/h", params={"version": "1"}),
        admin.get("/v1/secrets/apps/h", headers={"If-None-Match": '"1"'}),
        admin.post("/v1/resolve", json={"refs": ["secretsd://apps/h#k"]}),
        admin.post("/v1/auth/tokens", json={"policies": []}),
        admin.get("/v1/auth/tokens/self"),
        admin.post("/v1/auth/approle/login", json={"role_id": role_id, "secret_id": secret_id}),
        admin.post("/v1/auth/approle/roles/h/secret-ids", json={}),
        admin.get("/v1/metadata/apps/h"),
        admin.get("/v1/secrets/apps/missing"),
        httpx.get(f"{server.url}/v1/secrets/apps/h"),
    ]
    for answer in no_store:
        _assert_secure(answer)
        assert answer.headers["cache-control"] == "no-store", answer.request.url.path
    for answer in [
        httpx.get(f"{server.url}/healthz"),
        httpx.get(f"{server.url}/openapi.json"),
        httpx.get(f"{server.url}/nowhere"),
        httpx.get(f"{server.url}/docs"),
    ]:
        _assert_secure(answer)
    api_csp = admin.get("/v1/secrets/apps/h").headers["content-security-policy"]
    assert api_csp.startswith("default-src 'none'")


def test_docs_come_from_the_package_not_a_cdn(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links
    assert all(link.startswith("/") and not link.startswith("//") for link in links), links
    assert "http" not in page.text.lower().replace("http-equiv", "")
    for link in links:
        asset = httpx.get(f"{server.url}{link}")
        assert asset.status_code == 200, link
        assert len(asset.content) > 10
    bundle = httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "secretsd"


def test_docs_render_in_a_browser_offline_under_their_csp(server: RunningServer) -> None:
    """A real headless Chromium renders /docs: the operations appear, nothing is refused."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("SECRETSD_REQUIRE_POSTGRES") == "1":  # CI: .ci/run installs it
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("needs chromium (apt-get install -y chromium)")
    rendered = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            f"{server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'data-path="/v1/secrets/{path}"' in rendered.stdout, rendered.stderr[-2000:]
    assert "Refused to" not in rendered.stderr, rendered.stderr[-2000:]


def test_docs_can_be_switched_off(server_factory: Any) -> None:
    server = server_factory(docs_enabled=False)
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert httpx.get(f"{server.url}{path}").status_code == 404, path


# -- bodies ---------------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_413(server: RunningServer, admin: httpx.Client) -> None:
    limit = server.settings.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"data": {"k": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}}'

    answer = httpx.put(  # not admin: the canary's hook cannot read a streamed body
        f"{server.url}/v1/secrets/apps/big",
        content=chunks(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"},
    )
    assert "content-length" not in answer.request.headers  # really chunked
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "payload_too_large"
    assert admin.get("/v1/secrets/apps/big").status_code == 404


@pytest.mark.parametrize(
    "raw",
    [
        b'{"data": {"k": "a\\ud800b"}}',
        b'{"data": {"k": "\\udc00\\ud800"}}',
        b'{"data": {"k\\udfff": "v"}}',
        b'{"data": {"k": "\xed\xa0\x80"}}',
        b'{"data": {"k": "\xff"}}',
    ],
)
def test_a_lone_surrogate_or_bad_utf8_is_refused(admin: httpx.Client, raw: bytes) -> None:
    answer = admin.put(
        "/v1/secrets/apps/sur", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["code"] == "invalid_input"
    assert admin.get("/v1/secrets/apps/sur").status_code == 404


def test_lone_surrogates_elsewhere_are_refused_too(server: RunningServer) -> None:
    login = httpx.post(
        f"{server.url}/v1/auth/approle/login",
        content=b'{"role_id": "r", "secret_id": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert login.status_code == 400


def test_a_surrogate_pair_is_real_text_and_round_trips(admin: httpx.Client) -> None:
    answer = admin.put(
        "/v1/secrets/apps/emoji",
        content=b'{"data": {"k": "smile \\ud83d\\ude00 \\\\ud800 ok"}}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert admin.get("/v1/secrets/apps/emoji").json()["data"]["k"] == "smile \U0001f600 \\ud800 ok"


# -- rate limits ----------------------------------------------------------------------


def _bad_login(
    url: str, role_id: str = "no-such-role", client: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    return httpx.post(
        f"{url}/v1/auth/approle/login",
        json={"role_id": role_id, "secret_id": "wrong-secret-id"},
        headers=headers,
    )


def _login(url: str, role_id: str, secret_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/approle/login", json={"role_id": role_id, "secret_id": secret_id}
    )


def test_failed_logins_are_limited_per_client_and_role_with_retry_after(
    server_factory: Any,
) -> None:
    server = server_factory(auth_failure_limit_per_client="5/minute")
    with server.client() as admin:
        admin.put("/v1/secrets/apps/rl", json={"data": {"k": "rate-limited-1"}})
        role_id, secret_id = _approle(admin, "rl", [])
        other_id, other_secret = _approle(admin, "rl-other", [])
        statuses = [_bad_login(server.url, role_id).status_code for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        limited = _bad_login(server.url, role_id)
        assert error_of(limited)["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # This address's good credentials for the flooded role wait too (Vault's lockout)...
        assert _login(server.url, role_id, secret_id).status_code == 429
        # ...but not its logins to another role (a flood must not lock a neighbour out)...
        assert _login(server.url, other_id, other_secret).status_code == 200
        # ...and an already known token keeps reading at full speed.
        assert admin.get("/v1/secrets/apps/rl").status_code == 200
        # Refusals are audited, folded into one record per client and interval.
        assert _rate_limited_details(admin) == ["approle: rate limited"]
        refusals = server.state.limiter._refusals
        last, folded = refusals["127.0.0.1"]
        assert folded == 4  # the other refusals since that record
        refusals["127.0.0.1"] = (last - 60, folded)  # as if the interval had passed
        assert _bad_login(server.url, role_id).status_code == 429
        assert _rate_limited_details(admin) == [
            "approle: rate limited",
            "approle: rate limited (4 more)",
        ]


def test_made_up_role_ids_share_one_budget_per_client(server_factory: Any) -> None:
    server = server_factory(auth_failure_limit_per_client="3/minute")
    with server.client() as admin:
        role_id, secret_id = _approle(admin, "honest", [])
    # Cycling through role ids that do not exist does not get a fresh budget each time.
    statuses = [_bad_login(server.url, f"made-up-{n}").status_code for n in range(5)]
    assert statuses == [401] * 3 + [429] * 2
    assert _login(server.url, role_id, secret_id).status_code == 200
    assert _bad_login(server.url, role_id).status_code == 401  # a real role: its own budget
    # The login gate tells made-up roles from real ones without a database read
    # (its index is reloaded in the background on every role change).
    roles = server.state.login_roles
    _eventually(lambda: not roles.may_exist("approle", "made-up-0"))
    assert roles.may_exist("approle", role_id)
    with server.client() as admin:
        assert admin.delete("/v1/auth/approle/roles/honest").status_code in (200, 204)
    _eventually(lambda: not roles.may_exist("approle", role_id))
    assert _bad_login(server.url, role_id).status_code == 429  # now a made-up role


def _eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def _rate_limited_details(admin: httpx.Client) -> list[str]:
    denied = admin.get("/v1/audit", params={"action": "login", "outcome": "denied"})
    return [r["detail"] for r in denied.json()["records"] if "rate limited" in r["detail"]]


def test_bad_tokens_are_limited_per_client(server_factory: Any) -> None:
    server = server_factory(auth_failure_limit_per_client="4/minute")
    with server.client() as admin:
        assert admin.get("/v1/auth/tokens/self").status_code == 200  # known to this worker
        statuses = []
        for n in range(6):
            with server.client(f"sdt_wrong-{n}") as stranger:
                statuses.append(stranger.get("/v1/secrets/apps/x").status_code)
        assert statuses == [401] * 4 + [429] * 2
        # A token the worker already knows is not held up by the flood from its address.
        assert admin.get("/v1/auth/tokens/self").status_code == 200
        # Nor is a valid token it has never seen (a flood must not lock honest clients out).
        fresh = admin.post("/v1/auth/tokens", json={"policies": ["admin"], "ttl": "1h"})
        assert fresh.status_code in (200, 201), fresh.text
    with server.client(fresh.json()["token"]) as newcomer:
        assert newcomer.get("/v1/auth/tokens/self").status_code == 200


def test_failed_logins_are_limited_per_role_across_addresses(server_factory: Any) -> None:
    server = server_factory(
        auth_failure_limit_per_client="100/minute",
        auth_failure_limit_per_role="3/minute",
        trusted_proxies=["127.0.0.1"],
    )
    with server.client() as admin:
        role_id, _ = _approle(admin, "target", [])
        other_id, other_secret = _approle(admin, "other", [])
    statuses = [_bad_login(server.url, role_id, f"10.0.0.{n}").status_code for n in range(5)]
    assert statuses == [401] * 3 + [429] * 2
    # Another role is not affected, from any address.
    other = {"role_id": other_id, "secret_id": other_secret}
    answer = httpx.post(
        f"{server.url}/v1/auth/approle/login", json=other, headers={"X-Forwarded-For": "10.0.0.1"}
    )
    assert answer.status_code == 200


def test_limits_can_be_switched_off(server_factory: Any) -> None:
    server = server_factory(auth_failure_limit_per_client="", auth_failure_limit_per_role="")
    assert {_bad_login(server.url).status_code for _ in range(40)} == {401}


def test_failed_kubernetes_logins_are_limited_per_role(server_factory: Any) -> None:
    server = server_factory(
        auth_failure_limit_per_client="100/minute",
        auth_failure_limit_per_role="2/minute",
        trusted_proxies=["127.0.0.1"],
    )

    def login(role: str, client: str) -> int:
        return httpx.post(
            f"{server.url}/v1/auth/kubernetes/login",
            json={"role": role, "jwt": "not.a.jwt"},
            headers={"X-Forwarded-For": client},
        ).status_code

    assert [login("web", f"10.0.1.{n}") for n in range(4)] == [401, 401, 429, 429]
    assert login("api", "10.0.1.9") == 401  # another role has its own budget


def test_a_kubernetes_flood_does_not_lock_out_another_role_from_the_same_address(
    server_factory: Any,
) -> None:
    from tests.test_kubernetes_login import ISSUER, keypair, projected

    server = server_factory(auth_failure_limit_per_client="2/minute")
    key, public = keypair()
    with server.client() as admin:
        configured = admin.put(
            "/v1/auth/kubernetes/config",
            json={"issuer": ISSUER, "public_keys": [public], "audiences": ["secretsd"]},
        )
        assert configured.status_code == 200, configured.text
        rules = {"rules": [{"path": "shop/**", "capabilities": ["read"]}]}
        assert admin.put("/v1/policies/shop", json=rules).status_code in (200, 201)
        for role, account in (("shop-web", "web"), ("shop-api", "api")):
            made = admin.put(
                f"/v1/auth/kubernetes/roles/{role}",
                json={
                    "bound_service_account_names": [account],
                    "bound_service_account_namespaces": ["shop"],
                    "policies": ["shop"],
                },
            )
            assert made.status_code == 200, made.text

    def login(role: str, token: str) -> int:
        return httpx.post(
            f"{server.url}/v1/auth/kubernetes/login", json={"role": role, "jwt": token}
        ).status_code

    assert [login("shop-web", "not.a.jwt") for _ in range(3)] == [401, 401, 429]
    assert login("shop-web", projected(key, "shop", "web")) == 429  # that role, this address
    assert login("shop-api", projected(key, "shop", "api")) == 200  # another role goes on
