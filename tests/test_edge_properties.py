# ruff: noqa: RUF001  (non-ASCII digits on purpose)
"""Property tests (hypothesis) of every parser at the edge that takes outside input.

Each parser either returns a value inside its documented bounds or raises the
one error it is meant to raise (ValidationFailed / InvalidReference), for any
input at all: never another exception (a 500), never an out-of-range value.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from secretsd.bounds import MAX_VERSION, QueryInt, parse_uint
from secretsd.durations import MAX_DURATION_SECONDS, Duration, format_duration, parse_duration
from secretsd.errors import InvalidReference, ValidationFailed
from secretsd.ref import parse_reference
from secretsd.server.edge import EdgeMiddleware
from secretsd.server.middleware import body_problem
from secretsd.server.reads import parse_if_none_match
from secretsd.server.routes.audit import _iso
from secretsd.server.schemas import parse_versions

# Digits from every script, signs, separators, units and junk: what breaks naive parsers.
TRICKY = st.sampled_from(list("0123456789²³¹١٢٣٤٥٦٧٨٩０１２𝟗smhd _+-.,eExX\t\n\x00"))
tricky_text = st.one_of(st.text(), st.text(TRICKY, max_size=30))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)


@given(st.one_of(tricky_text, st.integers(), st.booleans(), st.floats(), st.none()))
def test_parse_duration_is_bounded_or_a_validation_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValidationFailed:
        return
    assert isinstance(seconds, int)
    assert 0 <= seconds <= MAX_DURATION_SECONDS
    if isinstance(value, str):
        assert value.strip().isascii()


@given(st.integers(0, MAX_DURATION_SECONDS))
def test_durations_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
    assert parse_duration(str(seconds)) == seconds


@given(json_values)
def test_the_duration_field_accepts_only_strict_bounded_durations(value: Any) -> None:
    try:
        checked = TypeAdapter(Duration).validate_python(value)
    except ValidationError:
        return
    assert not isinstance(checked, bool)
    assert 0 <= parse_duration(checked) <= MAX_DURATION_SECONDS


@given(tricky_text, st.integers(0, 2**70))
def test_parse_uint_is_ascii_and_bounded(text: str, maximum: int) -> None:
    try:
        value = parse_uint(text, name="n", maximum=maximum)
    except ValidationFailed:
        return
    assert 0 <= value <= maximum
    assert text.strip().isascii() and text.strip().isdigit()


@given(st.one_of(tricky_text, st.integers(0, 2**70).map(str)))
def test_query_integers_take_only_ascii_digits(text: str) -> None:
    try:
        value = TypeAdapter(QueryInt).validate_python(text)
    except ValidationError:
        return
    assert str(value) == text.lstrip("0") or (value == 0 and set(text) == {"0"})


@given(st.one_of(tricky_text, st.lists(st.integers(-5, 2**40).map(str)).map(",".join)))
def test_parse_versions_is_bounded(raw: str) -> None:
    try:
        versions = parse_versions(raw)
    except ValidationFailed:
        return
    assert versions is None or all(1 <= v <= MAX_VERSION for v in versions)


@given(tricky_text)
def test_if_none_match_gives_a_bounded_version_or_none(raw: str) -> None:
    version = parse_if_none_match(raw)
    assert version is None or 0 <= version <= MAX_VERSION


@given(st.one_of(tricky_text, st.datetimes().map(lambda d: d.isoformat())))
def test_audit_times_are_canonical_or_refused(raw: str) -> None:
    try:
        canonical = _iso(raw, "since")
    except ValidationFailed:
        return
    assert canonical == "" or canonical.endswith("Z")


@given(
    st.one_of(
        tricky_text.map(lambda t: "secretsd://apps/db?version=" + t),
        st.integers(0, 2**70).map(lambda n: f"secretsd://apps/db?version={n}#k"),
    )
)
def test_reference_versions_are_bounded(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidReference:
        return
    assert reference.version is not None and 1 <= reference.version <= MAX_VERSION


@given(st.binary(max_size=200))
def test_body_problem_never_raises(body: bytes) -> None:
    assert body_problem(body) is None or isinstance(body_problem(body), str)


@example({"\U00010000": -(2**63) - 1})  # found by hypothesis: orjson refuses big integers
@given(json_values)
def test_valid_unicode_json_is_never_refused(value: Any) -> None:
    for ascii_only in (True, False):
        body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value))
        problem = body_problem(body)
        if has_surrogate:
            assert problem is not None
        else:
            assert problem is None


@given(st.integers(0xD800, 0xDFFF), st.text(max_size=5), st.text(max_size=5))
def test_every_lone_surrogate_escape_is_refused(code: int, before: str, after: str) -> None:
    body = json.dumps({"k": before + chr(code) + after}).encode("ascii", "surrogatepass")
    assert body_problem(body) is not None


# -- X-Forwarded-For ---------------------------------------------------------------------

forwarded = st.one_of(
    tricky_text,
    st.lists(st.ip_addresses().map(str), min_size=1, max_size=4).map(", ".join),
    st.lists(st.one_of(st.ip_addresses().map(str), tricky_text), max_size=4).map(",".join),
)


def _seen_client(peer: str, header: str, trusted: list[str]) -> tuple[int, str | None]:
    """Run the edge over one request; the status and the client address the app saw."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/x",
        "headers": [(b"x-forwarded-for", header.encode("utf-8", "surrogatepass"))],
        "client": (peer, 40000),
        "scheme": "http",
    }
    asyncio.run(EdgeMiddleware(app, trusted_proxies=trusted)(scope, receive, send))
    return statuses[0], (seen[0] if seen else None)


@settings(max_examples=200)
@given(forwarded)
def test_forwarded_for_from_an_untrusted_peer_changes_nothing(header: str) -> None:
    assert _seen_client("127.0.0.1", header, []) == (204, "127.0.0.1")
    assert _seen_client("127.0.0.1", header, ["10.0.0.0/8"]) == (204, "127.0.0.1")


@settings(max_examples=200)
@given(forwarded)
def test_forwarded_for_from_a_trusted_proxy_yields_an_ip_or_400(header: str) -> None:
    status, client = _seen_client("127.0.0.1", header, ["127.0.0.1"])
    if status == 400:
        assert client is None
        return
    assert status == 204 and client is not None
    ipaddress.ip_address(client)


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("6.6.6.6, 10.1.2.3", "10.1.2.3"),
        ("10.1.2.3, 127.0.0.1", "10.1.2.3"),
        ("", "127.0.0.1"),
    ],
)
def test_forwarded_for_takes_the_first_untrusted_hop_from_the_right(
    header: str, client: str
) -> None:
    assert _seen_client("127.0.0.1", header, ["127.0.0.1"]) == (204, client)


@pytest.mark.parametrize(
    ("scheme", "path", "hsts", "no_store"),
    [
        ("http", "/v1/secrets/a", False, True),
        ("https", "/v1/secrets/a", True, True),
        ("https", "/docs", True, True),
        ("http", "/docs/assets/swagger-ui.css", False, False),
    ],
)
def test_edge_headers_by_scheme_and_path(
    scheme: str, path: str, hsts: bool, no_store: bool
) -> None:
    started: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        started.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "scheme": scheme}
    asyncio.run(EdgeMiddleware(app)(scope, receive, send))
    headers = dict(started[0]["headers"])
    assert headers[b"x-frame-options"] == b"DENY"
    assert (b"strict-transport-security" in headers) is hsts
    assert (headers.get(b"cache-control") == b"no-store") is no_store


def test_trusted_proxies_and_limits_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from secretsd.config import load_settings
    from secretsd.errors import ConfigError

    monkeypatch.setenv("SECRETSD_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    assert load_settings().trusted_proxies == ["10.0.0.5", "10.1.0.0/16"]
    assert load_settings({"trusted_proxies": ["::1"]}).trusted_proxies == ["::1"]
    for bad in ("*", "10.0.0.0/33", "proxy.example"):
        monkeypatch.setenv("SECRETSD_TRUSTED_PROXIES", bad)
        with pytest.raises(ConfigError, match="trusted_proxies"):
            load_settings()
    monkeypatch.delenv("SECRETSD_TRUSTED_PROXIES")
    assert load_settings().trusted_proxies == []  # off by default
    with pytest.raises(ConfigError, match="not a rate limit"):
        load_settings({"auth_failure_limit_per_role": "lots"})
    assert load_settings({"auth_failure_limit_per_client": ""}).auth_failure_limit_per_client == ""
