"""`--managed`: only hash prefixes leave the machine; full hashes are compared locally."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from secretsd.scanners.managed import HashLookupClient, candidates, client_from_env
from secretsd.scanners.model import Fragment

from secretsd.cli.main import main
from secretsd.errors import ConfigError, Unauthenticated, Unavailable

STORED = "corp-internal-9f2c1a"  # an ordinary-looking value no rule would flag


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class FakeServer:
    """The server side of the contract, recording what it was sent."""

    def __init__(self, stored: list[str]) -> None:
        self.stored = {sha(v) for v in stored}
        self.bodies: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer good":
            return httpx.Response(
                401, json={"error": {"code": "unauthenticated", "message": "bad token"}}
            )
        body = json.loads(request.content)
        self.bodies.append(body)
        hashes = sorted(h for h in self.stored if h[:5] in set(body["prefixes"]))
        return httpx.Response(200, json={"algorithm": "sha256", "hashes": hashes})


def test_candidates_cover_literals_and_assignments() -> None:
    text = b'a = "long-enough-1"\nb: \'long-enough-2\'\nC=long-enough-3\nshort = "tiny"\n'
    values = [c.value for c in candidates(Fragment("x.py", text))]
    assert values == ["long-enough-1", "long-enough-2", "long-enough-3"]
    assert [c.line for c in candidates(Fragment("x.py", text))] == [1, 2, 3]


def test_only_prefixes_are_sent_and_matches_are_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(
        f"service:\n  upstream_key: {STORED}\n  name: frontend-web\n"
    )
    server = FakeServer([STORED, "another-stored-value"])
    transport = httpx.MockTransport(server)
    import secretsd.scanners.managed as managed

    monkeypatch.setattr(
        managed,
        "client_from_env",
        lambda environ=None: HashLookupClient("http://sd.test", "good", transport=transport),
    )
    code = main(["scan", str(tmp_path), "--managed", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [(f["rule"], f["path"], f["line"]) for f in findings] == [
        ("managed-secret", "app.yaml", 2)
    ]
    assert STORED not in out
    sent = [p for body in server.bodies for p in body["prefixes"]]
    assert sent
    assert all(len(p) == 5 for p in sent)
    assert sha(STORED)[:5] in sent
    assert STORED not in json.dumps(server.bodies)
    assert sha(STORED) not in json.dumps(server.bodies)


def test_errors_from_the_server() -> None:
    client = HashLookupClient(
        "http://sd.test", "bad", transport=httpx.MockTransport(FakeServer([]))
    )
    with pytest.raises(Unauthenticated, match="bad token"):
        client.lookup(["abcde"])

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = HashLookupClient("http://sd.test", "good", transport=httpx.MockTransport(down))
    with pytest.raises(Unavailable, match="cannot reach secretsd"):
        client.lookup(["abcde"])


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
