"""The API routes the console added (who-can, policy validation, audit chain) and the
console's HTTP behaviour without a browser (sessions, exports, headers)."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import shutil
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from secretsd.cli.policy_cmd import load_policy_file
from secretsd.console.audit_pages import chart_series
from secretsd.console.leaks_pages import parse_report
from secretsd.errors import ValidationFailed
from tests.conftest import (
    CANARY,
    RunningServer,
    make_settings,
    self_signed_certificate,
    start_server,
)


def _token(admin: httpx.Client, *policies: str, name: str = "") -> str:
    answer = admin.post("/v1/auth/tokens", json={"policies": list(policies), "display_name": name})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@pytest.fixture
def console(server: RunningServer) -> Iterator[httpx.Client]:
    """A signed-in console session (cookie jar) driven over plain HTTP.

    httpcore logs response headers at DEBUG, Set-Cookie included: that is this
    test client's own log (a browser keeps no such log), so it is quietened
    while the session token is remembered by the canary for every other text.
    """
    wire = logging.getLogger("httpcore")
    previous = wire.level
    wire.setLevel(logging.INFO)
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        answer = client.post("/ui/login", data={"method": "token", "token": server.token})
        assert answer.status_code == 303
        CANARY.remember(client.cookies.get("secretsd_console"))
        try:
            yield client
        finally:
            wire.setLevel(previous)


def _csrf(console: httpx.Client) -> str:
    page = console.get("/ui/secrets").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _audit(admin: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = admin.get("/v1/audit", params=filters).json()["records"]
    return records


def test_who_can_is_authorised_and_audited(server: RunningServer, admin: httpx.Client) -> None:
    admin.put(
        "/v1/policies/readers", json={"rules": [{"path": "apps/x/**", "capabilities": ["read"]}]}
    )
    admin.put(
        "/v1/policies/auditors",
        json={"rules": [{"path": "sys/access", "capabilities": ["read"]}]},
    )
    reader = _token(admin, "readers", name="reader")
    auditor = _token(admin, "auditors", name="auditor")
    admin.put("/v1/auth/approle/roles/x-app", json={"policies": ["readers"]})
    with server.client(reader) as client:
        denied = client.get("/v1/access/who-can", params={"path": "apps/x/db"})
    assert denied.status_code == 403
    assert _audit(admin, action="who-can", outcome="denied")
    with server.client(auditor) as client:
        answer = client.get("/v1/access/who-can", params={"path": "apps/x/db"}).json()
    read = answer["capabilities"]["read"]
    assert read["policies"] == ["admin", "readers"]
    assert "reader" in [t["display_name"] for t in read["tokens"]]
    assert "auditor" not in [t["display_name"] for t in read["tokens"]]
    assert read["approles"] == ["x-app"]
    assert answer["capabilities"]["write"]["approles"] == []
    allowed = _audit(admin, action="who-can", outcome="allowed")
    assert allowed and allowed[-1]["path"] == "sys/access"
    with server.client(auditor) as client:
        bad = client.get("/v1/access/who-can", params={"path": "../etc"})
    assert bad.status_code in (400, 422)


def test_policy_validation_gives_the_cli_message(
    server: RunningServer, admin: httpx.Client
) -> None:
    text = "rules:\n  - path: apps/**\n    capabilities: [read]\n  - path: /bad\n    capabilities: [read]\n"
    with pytest.raises(ValidationFailed) as expected:
        load_policy_file("p1", text, "text")
    answer = admin.post("/v1/policies/p1/validate", json={"text": text}).json()
    assert answer == {"valid": False, "message": expected.value.message.removeprefix("text: ")}
    assert answer["message"].startswith("policy 'p1' rule 2 (line 4)")
    broken = admin.post("/v1/policies/p1/validate", json={"text": "rules: [\n"}).json()
    assert broken["valid"] is False and broken["message"].startswith("text line 2: not valid YAML")
    assert "line 4" in answer["message"]
    good = admin.post("/v1/policies/p1/validate", json={"text": "rules: []"}).json()
    assert good["valid"] is False and "no rules" in good["message"]
    ok = admin.post(
        "/v1/policies/p1/validate", json={"text": "- path: a/**\n  capabilities: [list]\n"}
    ).json()
    assert ok == {
        "valid": True,
        "message": "",
        "rules": [{"path": "a/**", "capabilities": ["list"]}],
    }
    assert admin.get("/v1/policies/p1").status_code == 404  # validation stores nothing
    admin.put("/v1/policies/r", json={"rules": [{"path": "a/**", "capabilities": ["read"]}]})
    with server.client(_token(admin, "r")) as client:
        assert client.post("/v1/policies/p1/validate", json={"text": text}).status_code == 403


def test_audit_chain_route_reports_tampering(server: RunningServer, admin: httpx.Client) -> None:
    admin.put("/v1/secrets/apps/chain/a", json={"data": {"k": "v" * 10}})
    first = admin.get("/v1/audit/chain").json()
    assert first["intact"] is True and first["checked"] > 0
    with server.state.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE audit_log SET detail = 'edited' WHERE seq = 2"))
    broken = admin.get("/v1/audit/chain").json()
    assert broken["intact"] is False and broken["problem"]["seq"] == 2


def test_console_needs_a_session(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as anonymous:
        page = anonymous.get("/ui/secrets")
        assert page.status_code == 303 and page.headers["location"] == "/ui/login"
        fragment = anonymous.get("/ui/secret-keys/apps/x", headers={"HX-Request": "true"})
        assert fragment.headers["hx-redirect"] == "/ui/login"
        login = anonymous.get("/ui/login")
        assert "script-src 'self'" in login.headers["content-security-policy"]
        assert login.headers["cache-control"] == "no-store"
        assert "DENY" in login.headers["x-frame-options"]  # the edge layer may add its own
        wrong = anonymous.post(
            "/ui/login", data={"method": "token", "token": "sdt_nope-" + "y" * 20}
        )
        assert wrong.status_code == 401 and "secretsd_console" not in wrong.cookies
        static = anonymous.get("/ui/static/htmx.min.js")
        assert static.status_code == 200 and "content-security-policy" in static.headers


def test_reveal_is_a_post_with_no_store(
    server: RunningServer, admin: httpx.Client, console: httpx.Client
) -> None:
    value = f"val-{uuid.uuid4().hex}"
    CANARY.remember(value)
    admin.put(
        "/v1/secrets/apps/rev/a", json={"data": {"k": value, "other": f"o-{uuid.uuid4().hex}"}}
    )
    keys = console.get("/ui/secret-keys/apps/rev/a")
    assert "k" in keys.text and value not in keys.text
    assert console.get("/ui/reveal").status_code == 405
    malformed = console.get("/ui/secret/apps/rev/a?version=first")
    assert malformed.status_code == 400 and "query.version" in malformed.text
    assert "text/html" in malformed.headers["content-type"]
    revealed = console.post(
        "/ui/reveal",
        data={"path": "apps/rev/a", "version": "1", "key": "k"},
        headers={"X-CSRF-Token": _csrf(console)},
    )
    assert revealed.status_code == 200 and value in revealed.text
    assert revealed.headers["cache-control"] == "no-store"
    assert "other" not in revealed.text  # one key at a time
    reads = _audit(admin, action="read", path_prefix="apps/rev/a")
    assert reads and reads[-1]["display_name"].startswith("console:")


def test_audit_export_csv_and_json(
    server: RunningServer, admin: httpx.Client, console: httpx.Client
) -> None:
    admin.put("/v1/secrets/apps/exp/a", json={"data": {"k": f"x-{uuid.uuid4().hex}"}})
    as_csv = console.get("/ui/audit/export", params={"format": "csv", "path_prefix": "apps/exp"})
    assert as_csv.status_code == 200 and "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and all(r["path"].startswith("apps/exp") for r in rows)
    assert {"write"} <= {r["action"] for r in rows}
    as_json = console.get("/ui/audit/export", params={"format": "json", "action": "write"})
    lines = [json.loads(line) for line in as_json.text.splitlines()]
    assert lines and all(r["action"] == "write" for r in lines)


def test_chart_series_buckets_reads_writes_and_denials() -> None:
    records = [
        {"time": "2026-11-24T10:00:00Z", "action": "read", "outcome": "allowed"},
        {"time": "2026-11-24T10:00:30Z", "action": "write", "outcome": "allowed"},
        {"time": "2026-11-24T11:00:00Z", "action": "read", "outcome": "denied"},
        {"time": "not a time", "action": "read", "outcome": "allowed"},
    ]
    series = chart_series(records)
    assert sum(series["reads"]) == 1 and sum(series["writes"]) == 1
    assert sum(series["denials"]) == 1
    assert series["reads"][0] == 1 and series["denials"][-1] == 1
    assert chart_series([]) == {"t": [], "reads": [], "writes": [], "denials": []}


def test_parse_report_drops_matched_text() -> None:
    sarif = {
        "runs": [
            {
                "versionControlProvenance": [{"repositoryUri": "https://git.example/app"}],
                "results": [
                    {
                        "ruleId": "aws-key",
                        "level": "error",
                        "message": {"text": "AKIA... found"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "a.env"},
                                    "region": {"startLine": 4, "snippet": {"text": "KEY=AKIA"}},
                                }
                            }
                        ],
                    }
                ],
            }
        ]
    }
    (finding,) = parse_report(json.dumps(sarif).encode())
    assert finding == {
        "repository": "https://git.example/app",
        "rule": "aws-key",
        "path": "a.env",
        "line": 4,
        "confidence": "error",
        "commit": "",
    }
    with pytest.raises(ValueError, match="not JSON"):
        parse_report(b"{")
    with pytest.raises(ValueError, match="SARIF"):
        parse_report(b"{}")


def test_token_that_cannot_mint_signs_in_as_given(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put(
        "/v1/policies/viewer", json={"rules": [{"path": "apps/**", "capabilities": ["list"]}]}
    )
    viewer = _token(admin, "viewer", name="viewer")
    admin.put("/v1/secrets/apps/v/a", json={"data": {"k": f"v-{uuid.uuid4().hex}"}})
    wire = logging.getLogger("httpcore")
    previous = wire.level
    wire.setLevel(logging.INFO)  # Set-Cookie in this client's own DEBUG log (see above)
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
            answer = browser.post("/ui/login", data={"method": "token", "token": viewer})
            assert answer.status_code == 303
            assert browser.cookies.get("secretsd_console") == viewer  # no minting grant
            tree = browser.get("/ui/secrets?prefix=apps").text
            assert "v/" in tree
            # The API decides: list yes, audit no (the page says why), read no.
            assert "not allowed" in browser.get("/ui/audit").text
            keys = browser.get("/ui/secret-keys/apps/v/a").text
            assert "not allowed" in keys
            out = browser.post("/ui/logout", data={"csrf": _csrf(browser)})
            assert out.status_code == 303 and "secretsd_console" not in browser.cookies
    finally:
        wire.setLevel(previous)
    with server.client(viewer) as client:  # the caller's own token is not revoked
        assert client.get("/v1/auth/tokens/self").status_code == 200


def test_session_cookie_is_secure_under_tls(tmp_path: Path, bao: Any, vault_prefix: str) -> None:
    cert_file, key_file = self_signed_certificate(tmp_path)
    server = start_server(make_settings(tmp_path, bao, vault_prefix), tls=(cert_file, key_file))
    wire = logging.getLogger("httpcore")
    previous = wire.level
    wire.setLevel(logging.INFO)  # Set-Cookie in this client's own DEBUG log (see above)
    try:
        with httpx.Client(
            base_url=server.url, verify=ssl.create_default_context(cafile=str(cert_file))
        ) as browser:
            answer = browser.post(
                "/ui/login", data={"method": "token", "token": server.token}, follow_redirects=False
            )
            CANARY.remember(browser.cookies.get("secretsd_console"))
            cookie = answer.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert "path=/ui" in cookie
    finally:
        wire.setLevel(previous)
        server.stop()


def test_the_canary_watches_console_pages_but_not_reveals() -> None:
    from tests.conftest import Canary

    canary = Canary()
    canary.remember("value-" + "q" * 20)
    page = "<td>value-" + "q" * 20 + "</td>"
    canary.note_console_response("http://h/ui/reveal", "text/html; charset=utf-8", page)
    canary.note_console_response("http://h/ui/static/console.js", "text/javascript", page)
    assert canary.leaks() == []
    canary.note_console_response("http://h/ui/secret/a", "text/html; charset=utf-8", page)
    assert len(canary.leaks()) == 1


def test_secret_page_shows_versions_writers_and_consumers(
    server: RunningServer, admin: httpx.Client, console: httpx.Client
) -> None:
    admin.put("/v1/secrets/apps/c/db", json={"data": {"k": f"c1-{uuid.uuid4().hex}"}})
    admin.put("/v1/secrets/apps/c/db", json={"data": {"k": f"c2-{uuid.uuid4().hex}"}})
    admin.delete("/v1/secrets/apps/c/db", params={"versions": "1"})
    report = {"consumer": "web-7f9c:app", "kind": "agent", "versions": {"apps/c/db": 2}}
    assert admin.put("/v1/consumers", json=report).status_code == 204
    page = console.get("/ui/secret/apps/c/db").text
    versions = page.split('id="versions"', 1)[1].split("</table>", 1)[0]
    assert "(current)" in versions and "deleted" in versions
    assert versions.count("admin (bootstrap)") == 2  # who wrote each version
    consumers = page.split('id="cons-h"', 1)[1].split("</section>", 1)[0]
    assert "web-7f9c:app" in consumers and "agent" in consumers


def _session_token(server: RunningServer, token: str) -> tuple[str, int]:
    """Sign in with ``token``: (the session cookie's token, the cookie's Max-Age)."""
    wire = logging.getLogger("httpcore")
    previous = wire.level
    wire.setLevel(logging.INFO)  # Set-Cookie in this client's own DEBUG log (see above)
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
            answer = browser.post("/ui/login", data={"method": "token", "token": token})
            assert answer.status_code == 303, answer.text
            session = str(browser.cookies.get("secretsd_console"))
            CANARY.remember(session)
            max_age = int(
                answer.headers["set-cookie"].lower().split("max-age=", 1)[1].split(";")[0]
            )
    finally:
        wire.setLevel(previous)
    return session, max_age


def test_session_length_is_configured_and_bounded(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secretsd.config import load_settings
    from secretsd.errors import ConfigError

    monkeypatch.setenv("SECRETSD_CONSOLE_SESSION_TTL", "600")
    assert load_settings().console_session_ttl == 600
    monkeypatch.delenv("SECRETSD_CONSOLE_SESSION_TTL")
    assert load_settings().console_session_ttl == 3600  # one hour by default
    for bad in (59, 86401, "an hour"):
        with pytest.raises(ConfigError) as caught:
            load_settings({"console_session_ttl": bad})
        assert "console_session_ttl" in caught.value.message

    server = server_factory(console_session_ttl=300)
    session, max_age = _session_token(server, server.token)
    with server.client(session) as client:
        me = client.get("/v1/auth/tokens/self").json()
    assert me["meta"]["console"] == "session"
    assert 240 < me["ttl"] <= 300 and 240 < max_age <= 300
    # A token that expires sooner than the setting: the session ends with it, not later.
    with server.client() as admin:
        short = admin.post(
            "/v1/auth/tokens", json={"policies": ["admin"], "ttl": "90s", "display_name": "short"}
        ).json()["token"]
    CANARY.remember(short)
    session, max_age = _session_token(server, short)
    with server.client(session) as client:
        me = client.get("/v1/auth/tokens/self").json()
    assert me["ttl"] <= 90 and max_age <= 90
    assert me["expires_at"] <= me["max_expires_at"]


def _plan_with(cli: Any, tmp_path: Path, *args: str) -> dict[str, Any]:
    """A plan made by the real `secretsd migrate plan --out` (the importers' own writer)."""
    out = tmp_path / "plan.json"
    cli("migrate", "plan", *args, "--out", str(out), env={"XDG_STATE_HOME": str(tmp_path / "s")})
    plan: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return plan


def _open_plan(console: httpx.Client, content: bytes, csrf: str | None = None) -> httpx.Response:
    return console.post(
        "/ui/plans",
        data={"csrf": csrf if csrf is not None else _csrf(console)},
        files={"plan": ("plan.json", content, "application/json")},
    )


def test_plan_page_shows_a_saved_plan_without_values(
    cli: Any, admin: httpx.Client, console: httpx.Client, tmp_path: Path
) -> None:
    from tests.migrate.conftest import EXPECTED, FIXTURES, expected_bytes, vault_id_flags

    admin.put("/v1/secrets/ansible/frontends/db", json={"data": {"password": "was-" + "z" * 12}})
    root = tmp_path / "ansible"
    shutil.copytree(FIXTURES / "ansible", root)
    plain = f"Xq9!vR2#{uuid.uuid4().hex[:10]}"  # a plaintext password the scanner flags
    CANARY.remember(plain)
    (root / "group_vars" / "web.yml").write_text(f'app_port: 8080\ndb_password: "{plain}"\n')
    plan = _plan_with(cli, tmp_path, "ansible", str(root), *vault_id_flags())
    page = _open_plan(console, json.dumps(plan).encode())
    assert page.status_code == 200, page.text
    text = page.text
    assert plan["plan_id"] in text and "plan-dropped" not in text
    items = text.split('id="plan-items"', 1)[1].split("</table>", 1)[0]
    assert items.count("<tr data-action=") == len(plan["items"])
    assert 'data-action="changed"' in items and 'data-action="new"' in items
    summary = text.split('id="plan-summary"', 1)[1].split("</dl>", 1)[0]
    for action, count in plan["summary"].items():
        assert f'data-count="{action}">{count}<' in summary
    # Where each value comes from, its plaintext finding and its duplicate, with the proposal.
    assert "group_vars/frontends.yml: db.password" in items
    plaintext = [i for i in plan["items"] if i["origin"] == "plaintext"]
    assert plaintext and f"plaintext finding: {plaintext[0]['plaintext_finding']}" in items
    duplicates = text.split('id="plan-duplicates"', 1)[1].split("</table>", 1)[0]
    assert "keep secretsd://ansible/all/vault_tls_key#value" in duplicates
    assert "ansible/roles/redis/redis_tls_key#value" in duplicates
    targets = text.split('id="plan-targets"', 1)[1].split("</table>", 1)[0]
    assert "ansible/frontends/db" in targets and "absent (new secret)" in targets
    for item in EXPECTED["items"]:  # not one fixture value on the page
        value = expected_bytes(item["value"]).decode("utf-8", "replace")
        if len(value) >= 8 and item["source"] == "ansible":
            assert value not in text
    assert plain not in text


def test_plan_page_drops_fields_a_plan_never_has(
    cli: Any, console: httpx.Client, tmp_path: Path
) -> None:
    from tests.migrate.conftest import FIXTURES

    plan = _plan_with(cli, tmp_path, "k8s", str(FIXTURES / "k8s" / "shop"))
    leaked = f"leaked-{uuid.uuid4().hex}"
    CANARY.remember(leaked)
    plan["items"][1]["value"] = leaked
    plan["items"][2]["source"][leaked] = "x"  # even a field's name is not shown
    plan["source"]["password"] = leaked
    page = _open_plan(console, json.dumps(plan).encode())
    assert page.status_code == 200
    assert leaked not in page.text
    dropped = page.text.split('id="plan-dropped"', 1)[1].split("</div>", 1)[0]
    assert "3 places" in dropped and "make a new one" in dropped
    assert "items[1]: 1 field" in dropped and "items[2].source: 1 field" in dropped
    assert "source: 1 field" in dropped
    assert page.text.count("<tr data-action=") == len(plan["items"])  # the rest is shown


def test_plan_page_refuses_what_is_not_a_plan(server: RunningServer, console: httpx.Client) -> None:
    cases = {
        b"{": "the file is not JSON",
        b'{"runs": []}': "is not a migration plan (secretsd-migrate-plan/1)",
        b'{"schema": "secretsd-migrate-plan/1", "plan_id": "x"}': "damaged migration plan",
        b'{"schema": "secretsd-migrate-plan/1", "plan_id": "x", "source": {}, "mapping": {}, '
        b'"items": [], "targets": {}, "duplicates": [7]}': "each entry must be an object",
    }
    for content, message in cases.items():
        page = _open_plan(console, content)
        assert page.status_code == 400 and message in page.text, (content, page.text[-600:])
        assert "Traceback" not in page.text
    limit = server.settings.max_body_bytes - 4096  # every body is bounded first
    too_big = _open_plan(console, b" " * (limit + 1))
    assert too_big.status_code == 400 and f"larger than {limit} bytes" in too_big.text
    assert "SECRETSD_MAX_BODY_BYTES" in too_big.text
    empty = console.post("/ui/plans", data={"csrf": _csrf(console)})
    assert empty.status_code == 400 and "choose a plan file" in empty.text
    assert _open_plan(console, b"{}", csrf="0" * 64).status_code == 403


def test_leaks_page_refuses_what_is_not_a_report(
    server: RunningServer, console: httpx.Client
) -> None:
    """The leaks page reads its upload through the same path as the plans page: the same
    refusals, the same status."""
    for content, message in {
        b"{": "not JSON",
        b"{}": "not a SARIF report",
    }.items():
        page = console.post(
            "/ui/leaks",
            data={"csrf": _csrf(console)},
            files={"report": ("report.json", content, "application/json")},
        )
        assert page.status_code == 400 and message in page.text, (content, page.text[-600:])
        assert "Traceback" not in page.text
    empty = console.post("/ui/leaks", data={"csrf": _csrf(console)})
    assert empty.status_code == 400 and "choose a report file" in empty.text


def _upload(
    console: httpx.Client, path: str, key: str, content: bytes, **fields: str
) -> httpx.Response:
    return console.post(
        "/ui/upload",
        data={"path": path, "key": key, "mode": "patch", **fields},
        files={"file": ("blob.bin", content, "application/octet-stream")},
        headers={"X-CSRF-Token": _csrf(console), "HX-Request": "true"},
    )


def test_upload_sets_a_key_from_a_file(
    server: RunningServer, admin: httpx.Client, console: httpx.Client
) -> None:
    text_value = f"kept-{uuid.uuid4().hex}"
    CANARY.remember(text_value)
    admin.put("/v1/secrets/apps/up/a", json={"data": {"text": text_value}})
    blob = b"\xff\xfe\x00" + bytes(range(256)) * 4
    answer = _upload(console, "apps/up/a", "ks", blob, cas="1")
    assert answer.status_code == 200, answer.text[-400:]
    assert answer.headers["hx-redirect"].endswith("?written=2")
    secret = admin.get("/v1/secrets/apps/up/a").json()
    assert secret["binary_keys"] == ["ks"] and secret["data"]["text"] == text_value
    assert base64.b64decode(secret["data"]["ks"]) == blob
    # UTF-8 text stays text (and un-marks the key in the version written).
    answer = _upload(console, "apps/up/a", "ks", "zürich\n".encode(), cas="2")
    assert answer.status_code == 200
    secret = admin.get("/v1/secrets/apps/up/a").json()
    assert secret["binary_keys"] == [] and secret["data"]["ks"] == "zürich\n"
    old = admin.get("/v1/secrets/apps/up/a", params={"version": 2}).json()
    assert old["binary_keys"] == ["ks"]  # marked per version
    # Check-and-set: a stale version is refused with the API's message; nothing written.
    stale = _upload(console, "apps/up/a", "ks", blob, cas="2")
    assert "hx-redirect" not in stale.headers and "check-and-set" in stale.text.lower()
    assert admin.get("/v1/secrets/apps/up/a").json()["version"] == 3
    # A new secret: written whole, only if new (cas 0).
    created = _upload(console, "apps/up/new", "cert.der", blob, mode="write", cas="0")
    assert created.headers["hx-redirect"] == "/ui/secret/apps/up/new?written=1"
    again = _upload(console, "apps/up/new", "cert.der", blob, mode="write", cas="0")
    assert "hx-redirect" not in again.headers
    # Audited through the API, as the console session's identity.
    writes = _audit(admin, path_prefix="apps/up/", action="patch")
    assert writes and all(r["display_name"].startswith("console:") for r in writes)
    # Bad input: one clear message, nothing written.
    bad = _upload(console, "apps/up/a", "", blob)
    assert "give the key" in bad.text
    most = (server.settings.max_body_bytes - 4096) * 3 // 4
    too_big = _upload(console, "apps/up/a", "big", b"\xff" * (most + 1))
    assert f"larger than {most} bytes" in too_big.text
    largest = _upload(console, "apps/up/b", "big", b"\xff" * most, mode="write")
    assert largest.headers["hx-redirect"].endswith("?written=1")  # the limit is reachable
    assert admin.get("/v1/secrets/apps/up/a").json()["version"] == 3
    forged = console.post(
        "/ui/upload",
        data={"path": "apps/up/a", "key": "ks", "mode": "patch"},
        files={"file": ("x", b"\xff", "application/octet-stream")},
    )
    assert forged.status_code == 403
