"""`--managed`: only hash prefixes leave the machine; full hashes are compared locally.

The service side is the real secretsd (the ``server`` fixture); a recording
transport keeps a copy of what the scanner sends.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from secretsd.scanners.managed import HashLookupClient, candidates, client_from_env
from secretsd.scanners.model import Fragment

from secretsd.cli.main import main
from secretsd.errors import ConfigError, Unauthenticated, Unavailable

STORED = "corp-internal-9f2c1a"  # an ordinary-looking value no rule would flag


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Recording(httpx.HTTPTransport):
    """The real HTTP transport, keeping a copy of every request body it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, list[str]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return super().handle_request(request)


def test_candidates_cover_literals_and_assignments() -> None:
    text = b'a = "long-enough-1"\nb: \'long-enough-2\'\nC=long-enough-3\nshort = "tiny"\n'
    values = [c.value for c in candidates(Fragment("x.py", text))]
    assert values == ["long-enough-1", "long-enough-2", "long-enough-3"]
    assert [c.line for c in candidates(Fragment("x.py", text))] == [1, 2, 3]


def test_only_prefixes_are_sent_and_matches_are_local(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    server: Any,
    admin: httpx.Client,
) -> None:
    """Against the real service: what leaves the machine is 5-hex-digit prefixes only."""
    admin.put("/v1/secrets/apps/upstream", json={"data": {"key": STORED}})
    admin.put("/v1/secrets/apps/other", json={"data": {"key": "another-stored-value"}})
    (tmp_path / "app.yaml").write_text(
        f"service:\n  upstream_key: {STORED}\n  name: frontend-web\n"
    )
    recording = Recording()
    import secretsd.scanners.managed as managed

    monkeypatch.setattr(
        managed,
        "client_from_env",
        lambda environ=None: HashLookupClient(server.url, server.token, transport=recording),
    )
    code = main(["scan", str(tmp_path), "--managed", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [(f["rule"], f["path"], f["line"]) for f in findings] == [
        ("managed-secret", "app.yaml", 2)
    ]
    assert STORED not in out
    sent = [p for body in recording.bodies for p in body["prefixes"]]
    assert sent
    assert all(len(p) == 5 for p in sent)
    assert sha(STORED)[:5] in sent
    assert STORED not in json.dumps(recording.bodies)
    assert sha(STORED) not in json.dumps(recording.bodies)


def test_errors_from_the_server(server: Any) -> None:
    client = HashLookupClient(server.url, "sdt_not-a-real-token-000000")
    with pytest.raises(Unauthenticated, match="token is unknown"):
        client.lookup(["abcde"])
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = HashLookupClient(f"http://127.0.0.1:{port}", "sdt_any")
    with pytest.raises(Unavailable, match="cannot reach secretsd"):
        down.lookup(["abcde"])


def test_credentials_from_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRETSD_ADDR"):
        client_from_env({})
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-tok-zz\n")
    client = client_from_env(
        {"SECRETSD_ADDR": "http://x:1", "SECRETSD_TOKEN_FILE": str(token_file)}
    )
    assert client.address == "http://x:1"
    assert "s3cr3t-tok-zz" not in repr(client)
    with pytest.raises(ConfigError, match="must start with http"):
        client_from_env({"SECRETSD_ADDR": "x:1", "SECRETSD_TOKEN": "t"})


def test_managed_without_credentials_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SECRETSD_ADDR", "SECRETSD_TOKEN", "SECRETSD_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["scan", str(tmp_path), "--managed"]) == 2
    assert "SECRETSD_ADDR" in capsys.readouterr().err
