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
from secretsd.scanners.managed import HashLookup, candidates, client_from_env
from secretsd.scanners.model import Fragment

from secretsd.cli.main import main
from secretsd.client import load_client_settings
from secretsd.errors import ConfigError, NotFound, Unauthenticated, Unavailable

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
        lambda environ=None: HashLookup(
            load_client_settings(server.url, server.token), transport=recording
        ),
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


def lookup_for(addr: str, token: str) -> HashLookup:
    return HashLookup(load_client_settings(addr, token, use_login_file=False))


def test_errors_from_the_server(server: Any) -> None:
    """The SDK's errors: a 404 is NotFound (not "unavailable"), an unknown token is
    Unauthenticated, and no hint names another port than the service's."""
    with pytest.raises(Unauthenticated, match="token is unknown"):
        lookup_for(server.url, "sdt_not-a-real-token-000000").lookup(["abcde"])
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(Unavailable, match="cannot reach secretsd") as down:
        lookup_for(f"http://127.0.0.1:{port}", "sdt_any").lookup(["abcde"])
    assert "8200" not in down.value.message
    # A service without the route (here: a path prefix in front of the real one).
    with pytest.raises(NotFound, match="no such endpoint"):
        lookup_for(server.url + "/elsewhere", server.token).lookup(["abcde"])


def test_credentials_come_from_the_sdk_settings_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(ConfigError, match="secretsd login") as missing:
        client_from_env({})
    assert "8200" not in missing.value.message and "8700" in missing.value.message
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-tok-zz\n")
    ca = tmp_path / "ca.pem"
    lookup = client_from_env(
        {
            "SECRETSD_ADDR": "https://x:1",
            "SECRETSD_TOKEN_FILE": str(token_file),
            "SECRETSD_CACERT": str(ca),
        }
    )
    assert lookup.settings.addr == "https://x:1"
    assert lookup.settings.cacert == ca  # SECRETSD_CACERT is honoured, as by every client
    assert lookup.settings.credential_kind == "token_file"
    assert "s3cr3t-tok-zz" not in repr(lookup)
    with pytest.raises(ConfigError, match="http:// or https://"):
        client_from_env({"SECRETSD_ADDR": "x:1", "SECRETSD_TOKEN": "t"})
    # AppRole credentials work too (the old client knew only tokens).
    approle = client_from_env({"SECRETSD_ROLE_ID": "r", "SECRETSD_SECRET_ID": "s"})
    assert approle.settings.credential_kind == "approle"


def test_managed_without_credentials_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SECRETSD_ADDR", "SECRETSD_TOKEN", "SECRETSD_TOKEN_FILE", "SECRETSD_ROLE_ID",
                 "SECRETSD_K8S_ROLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert main(["scan", str(tmp_path), "--managed"]) == 2
    assert "secretsd login" in capsys.readouterr().err
