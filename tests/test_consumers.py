"""Consumer versions: agents report what they hold; ``consumers`` shows it; ``rotate --wait``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretsd.agent.config import from_yaml
from secretsd.agent.report import Reporter
from secretsd.agent.runner import Agent
from secretsd.client import Client
from tests.conftest import ADMIN_TOKEN, RunningServer


@pytest.fixture
def server(database_url: str, server_factory: Any) -> RunningServer:
    # database_url first: pytest tears fixtures down in reverse, so the server stops
    # before its PostgreSQL schema is dropped (else DROP SCHEMA can deadlock with it).
    running: RunningServer = server_factory(database_url, max_wait=1.0)
    return running


def start_agent(
    server: RunningServer, tmp_path: Path, name: str, ref: str
) -> tuple[Agent, threading.Thread, Client]:
    folder = tmp_path / name.replace("/", "_")
    folder.mkdir()
    config = folder / "agent.yaml"
    config.write_text(f"files:\n  value: {ref}\n")
    client = Client(
        server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0, report_versions=False
    )
    reporter = Reporter(client, name=name)
    agent = Agent(from_yaml(config), folder / "out", client, on_rendered=reporter.report)
    thread = threading.Thread(target=agent.run_sidecar, daemon=True)
    thread.start()
    return agent, thread, client


def test_agents_report_and_rotate_waits_for_them(
    server: RunningServer, admin: httpx.Client, cli: Any, tmp_path: Path
) -> None:
    admin.put("/v1/secrets/apps/rot", json={"data": {"k": "rotate-value-1"}})
    agents = [
        start_agent(server, tmp_path, f"pod/shop/web-{i}", "secretsd://apps/rot#k")
        for i in range(3)
    ]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = admin.get("/v1/consumers/apps/rot").json()["consumers"]
            if len(rows) == 3:
                break
            time.sleep(0.05)
        assert [(r["consumer"], r["version"], r["live"], r["kind"]) for r in rows] == [
            (f"pod/shop/web-{i}", 1, True, "agent") for i in range(3)
        ]
        shown = json.loads(cli("consumers", "apps/rot", "--json").stdout)
        assert len(shown["consumers"]) == 3
        started = time.monotonic()
        result = json.loads(
            cli("rotate", "apps/rot", "k=rotate-value-2", "--wait", "--json").stdout
        )
        assert result == {"path": "apps/rot", "version": 2, "laggards": []}
        assert time.monotonic() - started < 5
        for i in range(3):
            assert (
                tmp_path / f"pod_shop_web-{i}" / "out" / "value"
            ).read_bytes() == b"rotate-value-2"
        # One agent stops updating (its watch ends): rotate --wait names it after the timeout.
        stuck, _, _ = agents[0]
        stuck.close()
        failed = cli("rotate", "apps/rot", "k=rotate-value-3", "--wait", "--timeout", "2", check=6)
        message = failed.stderr.decode()
        assert (
            "1 live consumer(s) of apps/rot still hold an older version: pod/shop/web-0 (v2)"
            in message
        )
        assert "rotate-value-3" not in message
    finally:
        for agent, thread, client in agents:
            agent.stop()
            thread.join(10)
            agent.close()
            client.close()


def test_reports_are_authorised_per_path_and_audited(
    server: RunningServer, admin: httpx.Client
) -> None:
    admin.put("/v1/secrets/apps/a", json={"data": {"k": "consumer-a-value"}})
    admin.put("/v1/policies/only-a", json={"rules": [{"path": "apps/a", "capabilities": ["read"]}]})
    token = admin.post("/v1/auth/tokens", json={"policies": ["only-a"], "ttl": "10m"}).json()[
        "token"
    ]
    with server.client(token) as app:
        ok = app.put("/v1/consumers", json={"consumer": "host/web-1", "versions": {"apps/a": 1}})
        assert ok.status_code == 204, ok.text
        denied = app.put(
            "/v1/consumers", json={"consumer": "host/web-1", "versions": {"apps/b": 1}}
        )
        assert denied.status_code == 403
        assert app.get("/v1/consumers/apps/b").status_code == 403
        assert app.get("/v1/consumers/apps/a").json()["consumers"][0]["identity"]
        bad = app.put("/v1/consumers", json={"consumer": "x y", "versions": {"apps/a": 1}})
        assert bad.status_code in (400, 422)
        huge = app.put("/v1/consumers", json={"consumer": "x", "versions": {"apps/a": 2**40}})
        assert huge.status_code in (400, 422)
    records = admin.get("/v1/audit", params={"action": "consumer-report"}).json()["records"]
    assert {"allowed", "denied"} <= {r["outcome"] for r in records}  # and the 422s: "error"
    reads = admin.get("/v1/audit", params={"action": "consumers-read"}).json()["records"]
    assert {r["outcome"] for r in reads} == {"allowed", "denied"}


def test_a_consumer_name_belongs_to_the_identity_that_reports_it(
    server: RunningServer, admin: httpx.Client
) -> None:
    """Another reader of the path cannot overwrite or withdraw a consumer's rows (which
    would let ``rotate --wait`` stop waiting for a laggard); the same identity logging in
    again (a new token, the same display name) keeps its name."""
    admin.put("/v1/secrets/apps/owned", json={"data": {"k": "owned-value"}})
    admin.put(
        "/v1/policies/owned", json={"rules": [{"path": "apps/owned", "capabilities": ["read"]}]}
    )

    def token(name: str) -> str:
        body = {"policies": ["owned"], "ttl": "10m", "display_name": name}
        return str(admin.post("/v1/auth/tokens", json=body).json()["token"])

    report = {"consumer": "pod/shop/web-1", "versions": {"apps/owned": 1}}
    with server.client(token("web")) as web, server.client(token("intruder")) as intruder:
        assert web.put("/v1/consumers", json=report).status_code == 204
        overwrite = intruder.put("/v1/consumers", json={**report, "versions": {"apps/owned": 2}})
        assert overwrite.status_code == 409, overwrite.text
        assert "give this process its own consumer name" in overwrite.json()["error"]["message"]
        withdraw = intruder.put(
            "/v1/consumers",
            json={"consumer": "pod/shop/web-1", "versions": {}, "released": ["apps/owned"]},
        )
        assert withdraw.status_code == 409
        held = admin.get("/v1/consumers/apps/owned").json()["consumers"]
        assert [(c["consumer"], c["version"]) for c in held] == [("pod/shop/web-1", 1)]
        assert (
            intruder.put("/v1/consumers", json={**report, "consumer": "pod/shop/other"}).status_code
            == 204
        )
    with server.client(token("web")) as web_again:  # a re-login: new token, same identity
        again = web_again.put("/v1/consumers", json={**report, "versions": {"apps/owned": 2}})
        assert again.status_code == 204, again.text
