# ruff: noqa: RUF001  (non-ASCII digits on purpose)
"""Every number from outside is ASCII and bounded: a clear 422, never a 500 or an odd meaning.

Runs against a real server (real OpenBao, SQLite and, when configured,
PostgreSQL, whose 32-bit columns are where an unbounded version once failed a
whole audit batch).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from secretsd.bounds import MAX_SECRET_KEYS, MAX_VERSION
from tests.conftest import RunningServer
from tests.test_api import audit_rows, error_of

HUGE = "99999999999999999999"
NOT_ASCII = ["²", "١٢", "１２"]
ODD = ["+5", "1_000", " 7", "0x10", "1e3", "-1"]


def assert_refused(response: httpx.Response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, (response.status_code, response.text)
    return error_of(response)


@pytest.fixture
def nobody(server: RunningServer, admin: httpx.Client) -> httpx.Client:
    """A token with no policies (the attacker of issue 8, item 5)."""
    token = admin.post("/v1/auth/tokens", json={"policies": []}).json()["token"]
    return server.client(token)


def test_huge_version_from_a_zero_policy_token_is_422_and_poisons_nothing(
    server_factory: Any, database_url: str
) -> None:
    server = server_factory(database_url)
    with server.client() as admin:
        admin.put("/v1/secrets/apps/one", json={"data": {"k": "value-one"}})
        token = admin.post("/v1/auth/tokens", json={"policies": []}).json()["token"]
        with server.client(token) as nobody:
            for raw in [HUGE, str(MAX_VERSION + 1), *NOT_ASCII, *ODD]:
                refused = nobody.get("/v1/secrets/apps/one", params={"version": raw})
                assert_refused(refused)
            # The attacker's own denial is audited and honest reads alongside still work.
            denied = nobody.get("/v1/secrets/apps/one", params={"version": str(MAX_VERSION)})
            assert denied.status_code == 403
        assert admin.get("/v1/secrets/apps/one").status_code == 200
    rows = audit_rows(server)
    assert any(r.outcome == "denied" and r.version == MAX_VERSION for r in rows)
    assert any(r.action == "read" and r.outcome == "allowed" for r in rows)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"wait": "inf"}, "wait"),
        ({"wait": "nan"}, "wait"),
        ({"wait": "1e300"}, "wait"),
        ({"wait": "1", "after": HUGE}, "after"),
        ({"wait": "1", "after": "²"}, "after"),
    ],
)
def test_long_poll_numbers_are_bounded(
    admin: httpx.Client, params: dict[str, str], name: str
) -> None:
    admin.put("/v1/secrets/apps/poll", json={"data": {"k": "v"}})
    refused = admin.get("/v1/secrets/apps/poll", params=params)
    assert name in assert_refused(refused)["message"]


@pytest.mark.parametrize("tag", ['"²"', '"١٢"', f'"{HUGE}"', 'W/"+1"'])
def test_odd_if_none_match_is_ignored_not_a_crash(admin: httpx.Client, tag: str) -> None:
    admin.put("/v1/secrets/apps/etag", json={"data": {"k": "v"}})
    answer = admin.get("/v1/secrets/apps/etag", headers={"If-None-Match": tag.encode()})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "ttl", ["²", "١٢", "١s", True, 2**62, 2**70, 1.5, "9" * 5000, "87601h", -1, "1h" * 20]
)
def test_durations_are_ascii_and_bounded(admin: httpx.Client, ttl: Any) -> None:
    refused = admin.post("/v1/auth/tokens", json={"policies": [], "ttl": ttl})
    assert "ttl" in assert_refused(refused)["message"]
    role = admin.put("/v1/auth/approle/roles/bounded", json={"token_ttl": ttl})
    assert "token_ttl" in assert_refused(role)["message"]
    k8s = admin.put(
        "/v1/auth/kubernetes/roles/bounded",
        json={
            "bound_service_account_names": ["a"],
            "bound_service_account_namespaces": ["b"],
            "token_ttl": ttl,
        },
    )
    assert "token_ttl" in assert_refused(k8s)["message"]


def test_durations_still_accept_what_people_write(admin: httpx.Client) -> None:
    for ttl, seconds in [
        ("90s", 90),
        ("1h30m", 5400),
        ("3600", 3600),
        (120, 120),
        ("87600h", None),
    ]:
        body = {"policies": [], "ttl": ttl, "max_ttl": "87600h"}
        issued = admin.post("/v1/auth/tokens", json=body)
        assert issued.status_code == 200, issued.text
        if seconds is not None:
            assert seconds - 2 <= issued.json()["ttl"] <= seconds


@pytest.mark.parametrize("number", [True, 2**62, 2**70, 1.5, -1, "3"])
def test_counts_and_versions_in_bodies_are_strict_and_bounded(
    admin: httpx.Client, number: Any
) -> None:
    admin.put("/v1/secrets/apps/counted", json={"data": {"k": "v"}})
    assert_refused(admin.put("/v1/secrets/apps/counted", json={"data": {"k": "v"}, "cas": number}))
    assert_refused(
        admin.patch("/v1/secrets/apps/counted", json={"data": {"k": "v"}, "cas": number})
    )
    assert_refused(admin.post("/v1/undelete/apps/counted", json={"versions": [number]}))
    assert_refused(admin.put("/v1/metadata/apps/counted", json={"max_versions": number}))
    role = admin.put("/v1/auth/approle/roles/counted", json={"secret_id_num_uses": number})
    assert_refused(role)
    admin.put("/v1/auth/approle/roles/counted", json={})
    issued = admin.post("/v1/auth/approle/roles/counted/secret-ids", json={"num_uses": number})
    assert_refused(issued)
    assert admin.get("/v1/secrets/apps/counted").json()["version"] == 1


@pytest.mark.parametrize("raw", [HUGE, "²", "1,²", "0", ",".join(["1"] * 1001)])
def test_versions_query_is_bounded(admin: httpx.Client, raw: str) -> None:
    admin.put("/v1/secrets/apps/vq", json={"data": {"k": "v"}})
    assert_refused(admin.delete("/v1/secrets/apps/vq", params={"versions": raw}))
    assert admin.get("/v1/secrets/apps/vq").status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "²"},
        {"cursor": HUGE},
        {"cursor": "9" * 30},
        {"limit": HUGE},
        {"limit": "١٢"},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "２０２６-01-01"},
        {"since": "2026-01-01" + "0" * 100},
    ],
)
def test_audit_query_numbers_and_dates_are_bounded(
    admin: httpx.Client, params: dict[str, str]
) -> None:
    assert_refused(admin.get("/v1/audit", params=params))


def test_token_list_limit_is_bounded(admin: httpx.Client) -> None:
    assert_refused(admin.get("/v1/auth/tokens", params={"limit": HUGE}))
    assert admin.get("/v1/auth/tokens", params={"limit": "5"}).status_code == 200


def test_key_count_is_secretsd_s_own_limit(admin: httpx.Client) -> None:
    many = {f"k{i}": "v" for i in range(MAX_SECRET_KEYS + 1)}
    refused = admin.put("/v1/secrets/apps/wide", json={"data": many})
    assert f"at most {MAX_SECRET_KEYS} keys" in assert_refused(refused)["message"]
    most = {f"k{i}": "v" for i in range(MAX_SECRET_KEYS)}
    assert admin.put("/v1/secrets/apps/wide", json={"data": most}).status_code == 200
    # A PATCH that would grow it past the limit is refused the same way, by secretsd.
    grown = admin.patch("/v1/secrets/apps/wide", json={"data": {"one-more": "v"}})
    assert f"at most {MAX_SECRET_KEYS} keys" in assert_refused(grown)["message"]
    assert admin.get("/v1/secrets/apps/wide").json()["version"] == 1


def test_reference_versions_are_bounded(admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/ref", json={"data": {"k": "v"}})
    answer = admin.post(
        "/v1/resolve", json={"refs": [f"secretsd://apps/ref?version={MAX_VERSION + 1}#k"]}
    )
    assert answer.status_code == 200
    (result,) = answer.json()["results"]
    assert result["error"]["code"] == "invalid_reference"


def test_an_overlong_path_from_a_stranger_does_not_fail_the_audit(
    server_factory: Any, database_url: str
) -> None:
    server = server_factory(database_url)
    long = "a/" * 350
    stranger = httpx.get(f"{server.url}/v1/secrets/{long}")
    assert stranger.status_code == 401, stranger.text
    forged = httpx.get(f"{server.url}/v1/secrets/{long}", headers={"Authorization": "Bearer sdt_x"})
    assert forged.status_code == 401, forged.text
    with server.client() as admin:
        assert admin.get(f"/v1/secrets/{long}").status_code == 400
    denied = [r for r in audit_rows(server) if r.action == "authenticate"]
    assert len(denied) == 2
    assert all(len(r.path) == 600 for r in denied)
