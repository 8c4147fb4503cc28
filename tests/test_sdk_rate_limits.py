"""The SDK meets the service's rate limits: it waits as told, within bounds, and never
repeats a write that a refusal could have hidden.

Real server, real OpenBao, the limiter tuned low (``2 per 3 seconds``) so that a
refusal's ``Retry-After`` is a few seconds; requests are counted on the wire by
the ``Counting`` transport (the real network underneath).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import secretsd
from secretsd.client import Client, ClientSettings, Retry
from secretsd.client._effects import HttpRequest
from tests.test_sdk import Counting

LIMIT = "2 per 3 seconds"


def _role(admin: httpx.Client, name: str) -> tuple[str, str]:
    rules = {"rules": [{"path": "apps/**", "capabilities": ["read"]}]}
    assert admin.put("/v1/policies/sdk-rl", json=rules).status_code in (200, 201)
    role = admin.put(f"/v1/auth/approle/roles/{name}", json={"policies": ["sdk-rl"]})
    assert role.status_code == 200, role.text
    issued = admin.post(f"/v1/auth/approle/roles/{name}/secret-ids", json={})
    return role.json()["role_id"], issued.json()["secret_id"]


def _flood_login(url: str, role_id: str) -> list[int]:
    """Failed logins to ``role_id`` until this address's budget for it is used up."""
    body = {"role_id": role_id, "secret_id": "wrong-secret-id"}
    return [httpx.post(f"{url}/v1/auth/approle/login", json=body).status_code for _ in range(3)]


def _flood_tokens(url: str) -> list[int]:
    """Bad tokens until this address's budget for them is used up."""
    headers = {"Authorization": "Bearer sdt_not-a-token"}
    return [httpx.get(f"{url}/v1/secrets/apps/x", headers=headers).status_code for _ in range(3)]


def _logins(transport: Counting) -> list[int]:
    pairs = zip(transport.requests, transport.statuses, strict=True)
    return [status for request, status in pairs if request.url.path.endswith("/login")]


@pytest.fixture
def limited(server_factory: Any) -> Any:
    return server_factory(auth_failure_limit_per_client=LIMIT)


def test_a_login_refused_with_429_waits_as_told_then_succeeds(limited: Any) -> None:
    with limited.client() as admin:
        admin.put("/v1/secrets/apps/rl", json={"data": {"k": "after-the-wait"}})
        role_id, secret_id = _role(admin, "sdk-rl")
    assert _flood_login(limited.url, role_id) == [401, 401, 429]
    transport = Counting()
    settings = ClientSettings(addr=limited.url, role_id=role_id, secret_id=secret_id)
    with Client(settings=settings, transport=transport, auto_renew=False) as sdk:
        assert sdk.get("secretsd://apps/rl#k") == "after-the-wait"
    logins = _logins(transport)
    assert logins[0] == 429 and logins[-1] == 200 and len(logins) <= 4


def test_a_refusal_past_the_budget_raises_rate_limited_with_the_hint(limited: Any) -> None:
    with limited.client() as admin:
        role_id, secret_id = _role(admin, "sdk-rl")
    assert _flood_login(limited.url, role_id)[-1] == 429
    settings = ClientSettings(addr=limited.url, role_id=role_id, secret_id=secret_id)
    for retry in (Retry(max_retry_after=0.5), Retry(refusals=0)):
        transport = Counting()
        with (
            Client(settings=settings, transport=transport, retry=retry) as sdk,
            pytest.raises(secretsd.RateLimited) as raised,
        ):
            sdk.get("secretsd://apps/rl#k")
        assert 1 <= raised.value.retry_after <= 3
        assert _logins(transport) == [429]  # asked once, not waited for


def test_a_plain_write_is_never_repeated_but_a_check_and_set_write_is(limited: Any) -> None:
    assert _flood_tokens(limited.url) == [401, 401, 429]
    transport = Counting()
    with Client(limited.url, "sdt_not-a-token", transport=transport, auto_renew=False) as sdk:
        with pytest.raises(secretsd.RateLimited):
            sdk.put("apps/rl-write", {"k": "never-sent-twice"})
        assert transport.statuses == [429]
        # With check-and-set a replay that had landed would fail its check, so it is sent
        # again after the wait (then refused for the bad token it is).
        with pytest.raises(secretsd.Unauthenticated):
            sdk.put("apps/rl-write", {"k": "sent-again"}, cas=0)
        assert transport.statuses == [429, 429, 401]


@pytest.mark.parametrize(
    ("request_", "status", "retried"),
    [
        (HttpRequest("GET", "/v1/secrets/a"), 429, True),
        (HttpRequest("HEAD", "/v1/secrets/a"), 503, True),
        (HttpRequest("PUT", "/v1/secrets/a", idempotent=False), 429, False),
        (HttpRequest("PUT", "/v1/secrets/a", idempotent=False, replayable=True), 503, True),
        (HttpRequest("DELETE", "/v1/secrets/a"), 429, False),
        (HttpRequest("POST", "/v1/auth/approle/login", idempotent=False, login=True), 429, True),
        (HttpRequest("POST", "/v1/auth/approle/login", idempotent=False, login=True), 503, False),
    ],
)
def test_refusal_retry_decisions(request_: HttpRequest, status: int, retried: bool) -> None:
    policy = Retry(refusals=2, max_retry_after=10)
    assert policy.after_refusal(request_, status, 3, refused=0, waited=0) is retried
    assert policy.after_refusal(request_, status, 3, refused=2, waited=0) is False
    assert policy.after_refusal(request_, status, 3, refused=1, waited=8) is False
