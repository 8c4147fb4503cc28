"""``secretsd agent``: config parsing, init and sidecar against the real service + OpenBao."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from secretsd.agent.config import (
    from_annotations,
    from_yaml,
    load_config,
    parse_annotations_file,
)
from secretsd.agent.runner import Agent
from secretsd.client import Client
from secretsd.errors import ConfigError, NotFound
from tests.conftest import ADMIN_TOKEN, CANARY, RunningServer, secretsd_executable
from tests.test_sdk import start_on_port


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    running: RunningServer = server_factory(max_wait=1.0)
    return running


@pytest.fixture
def sdk(server: RunningServer) -> Any:
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, cache_ttl=0) as client:
        yield client


def agent_env(server: RunningServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(SECRETSD_ADDR=server.url, SECRETSD_TOKEN=ADMIN_TOKEN)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(extra)
    return env


def go_quote(value: str) -> str:
    """What the kubelet writes for an annotation value (Go's %q, enough for these tests)."""
    out = ['"']
    for char in value:
        out.append(
            {"\n": "\\n", "\t": "\\t", '"': '\\"', "\\": "\\\\"}.get(char, char)
            if char.isprintable() or char in "\n\t"
            else f"\\x{ord(char):02x}"
        )
    out.append('"')
    return "".join(out)


def write_annotations(path: Path, annotations: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={go_quote(v)}\n" for k, v in annotations.items()))
    return path


# -- configuration ------------------------------------------------------------------


def test_annotations_file_as_kubernetes_writes_it(tmp_path: Path) -> None:
    template = 'user = "{{ secret("secretsd://apps/web/db#user") }}"\n\tpath = C:\\x\n'
    path = write_annotations(
        tmp_path / "annotations",
        {
            "kubernetes.io/config.seen": "2024-01-01T00:00:00Z",
            "secretsd.io/inject": "true",
            "secretsd.io/role": "web",
            "secretsd.io/secret-db.json": "secretsd://apps/web/db",
            "secretsd.io/secret-password": "secretsd://apps/web/db#password",
            "secretsd.io/mode-password": "0440",
            "secretsd.io/secret-app.env": "secretsd://apps/web/db",
            "secretsd.io/format-app.env": "dotenv",
            "secretsd.io/template-app.conf": template,
            "secretsd.io/on-change": "signal:HUP:nginx",
            "secretsd.io/init-only": "false",
        },
    )
    raw = parse_annotations_file(path)
    assert raw["secretsd.io/template-app.conf"] == template
    config = from_annotations(raw)
    outputs = {o.name: o for o in config.outputs}
    assert config.role == "web"
    assert outputs["db.json"].format == "json" and outputs["db.json"].mode == 0o400
    assert outputs["password"].format == "raw" and outputs["password"].mode == 0o440
    assert outputs["app.env"].format == "dotenv"
    assert outputs["app.conf"].template == template
    assert config.on_change is not None and config.on_change.signal == "SIGHUP"
    assert config.on_change.process == "nginx"


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"secretsd.io/secret-x": "apps/web/db"}, "does not start with 'secretsd://'"),
        (
            {"secretsd.io/secret-x": "secretsd://apps/web/db", "secretsd.io/format-x": "xml"},
            "format 'xml' of 'x' is not one of",
        ),
        (
            {"secretsd.io/secret-x": "secretsd://a", "secretsd.io/format-x": "raw"},
            "raw output of 'x' needs one key",
        ),
        ({"secretsd.io/secret-x": "secretsd://a", "secretsd.io/mode-x": "0666"}, "lets others"),
        ({"secretsd.io/secret-x": "secretsd://a", "secretsd.io/mode-x": "rw"}, "not an octal"),
        ({"secretsd.io/secret-../x": "secretsd://a"}, "not a valid file name"),
        ({"secretsd.io/secret-x": "secretsd://a", "secretsd.io/template-x": "t"}, "exactly one"),
        ({"secretsd.io/format-x": "json"}, "exactly one"),
        ({"secretsd.io/secrets-x": "secretsd://a"}, "unknown annotation"),
        (
            {"secretsd.io/secret-x": "secretsd://a", "secretsd.io/on-change": "reload"},
            "not an on-change action",
        ),
        (
            {"secretsd.io/secret-x": "secretsd://a", "secretsd.io/on-change": "signal:NOPE"},
            "not an on-change action",
        ),
        (
            {"secretsd.io/secret-x": "secretsd://a", "secretsd.io/init-only": "yes"},
            'expected "true" or "false"',
        ),
    ],
)
def test_bad_annotations_are_refused_clearly(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        from_annotations(annotations)


def test_yaml_config_and_merge(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(
        textwrap.dedent(
            """\
            role: web
            owner: "1000:1000"
            on_change: exec:/bin/true
            files:
              db.yaml: {secret: "secretsd://apps/web/db", format: yaml, mode: 0440}
              short: secretsd://apps/web/db#user
            """
        )
    )
    config = from_yaml(config_file)
    outputs = {o.name: o for o in config.outputs}
    assert outputs["db.yaml"].mode == 0o440 and outputs["db.yaml"].uid == 1000
    assert outputs["short"].format == "raw"
    annotations = write_annotations(
        tmp_path / "annotations", {"secretsd.io/secret-short": "secretsd://apps/x#y"}
    )
    with pytest.raises(ConfigError, match="both in the config file and in the annotations"):
        load_config(annotations, config_file)
    (tmp_path / "bad.yaml").write_text("files:\n  x: {secret: 'secretsd://a', colour: red}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="nothing to render"):
        load_config(None, None, default_annotations=tmp_path / "absent")


# -- init mode -------------------------------------------------------------------------


def run_agent(
    mode: str, server: RunningServer, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [secretsd_executable(), "agent", mode, *args],
        capture_output=True,
        env=agent_env(server, tmp_path, **env),
        timeout=60,
    )
    CANARY.texts.append(
        (f"stderr of secretsd agent {mode}", result.stderr.decode(errors="replace"))
    )
    return result


def test_init_renders_every_format_and_exits(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    keystore = bytes(range(256))
    sdk.put("apps/web/db", {"user": "web", "password": "pw-agent-init-1"})
    sdk.put("apps/web/ks", {"jks": keystore})
    out = tmp_path / "out"
    annotations = write_annotations(
        tmp_path / "annotations",
        {
            "secretsd.io/secret-db.json": "secretsd://apps/web/db",
            "secretsd.io/secret-db.yaml": "secretsd://apps/web/db",
            "secretsd.io/format-db.yaml": "yaml",
            "secretsd.io/secret-app.env": "secretsd://apps/web/db",
            "secretsd.io/format-app.env": "dotenv",
            "secretsd.io/secret-password": "secretsd://apps/web/db#password",
            "secretsd.io/mode-password": "0440",
            "secretsd.io/secret-keystore.jks": "secretsd://apps/web/ks#jks",
            "secretsd.io/template-app.conf": (
                "[db]\nuser = {{ secret('secretsd://apps/web/db#user') }}\n"
                "{% for k, v in secret('secretsd://apps/web/db') | dictsort %}{{ k }}={{ v }};"
                "{% endfor %}\n"
            ),
        },
    )
    result = run_agent(
        "init", server, tmp_path, "--annotations", str(annotations), "--dir", str(out)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"pw-agent-init-1" not in result.stderr
    import json

    import yaml

    assert json.loads((out / "db.json").read_text()) == {
        "user": "web",
        "password": "pw-agent-init-1",
    }
    assert yaml.safe_load((out / "db.yaml").read_text())["password"] == "pw-agent-init-1"
    assert (out / "app.env").read_text() == "password=pw-agent-init-1\nuser=web\n"
    assert (out / "password").read_bytes() == b"pw-agent-init-1"
    assert (out / "keystore.jks").read_bytes() == keystore
    assert (out / "app.conf").read_text() == (
        "[db]\nuser = web\npassword=pw-agent-init-1;user=web;\n"
    )
    assert stat.S_IMODE((out / "db.json").stat().st_mode) == 0o400
    assert stat.S_IMODE((out / "password").stat().st_mode) == 0o440
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


@pytest.mark.parametrize(
    ("ref", "message", "code"),
    [
        ("secretsd://apps/none", "password: secret 'apps/none' does not exist", 3),
        (
            "secretsd://apps/web/db#nokey",
            "password: secret 'apps/web/db' (version 1) has no key 'nokey'; keys: user",
            3,
        ),
    ],
)
def test_init_fails_with_one_line_naming_what_is_missing(
    server: RunningServer, sdk: Client, tmp_path: Path, ref: str, message: str, code: int
) -> None:
    sdk.put("apps/web/db", {"user": "web"})
    config = tmp_path / "agent.yaml"
    config.write_text(f"files:\n  password: {{secret: '{ref}'}}\n")
    result = run_agent(
        "init", server, tmp_path, "--config", str(config), "--dir", str(tmp_path / "o")
    )
    assert result.returncode == code
    lines = result.stderr.decode().strip().splitlines()
    assert lines == [f"Error: {message}"]


def test_init_names_a_missing_permission(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/web/db", {"user": "web"})
    sdk.request(
        "PUT",
        "/v1/policies/only-other",
        json={"rules": [{"path": "apps/other/*", "capabilities": ["read"]}]},
    )
    token = sdk.request("POST", "/v1/auth/tokens", json={"policies": ["only-other"], "ttl": "10m"})[
        "token"
    ]
    config = tmp_path / "agent.yaml"
    config.write_text("files:\n  user: secretsd://apps/web/db#user\n")
    result = run_agent(
        "init",
        server,
        tmp_path,
        "--config",
        str(config),
        "--dir",
        str(tmp_path / "o"),
        SECRETSD_TOKEN=token,
    )
    assert result.returncode == 4
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: user: reading 'apps/web/db': ")
    assert "apps/web/db" in lines[0]


# -- sidecar mode -------------------------------------------------------------------------


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_sidecar_updates_within_a_second_atomically_and_keeps_the_mode(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/web/db", {"password": "pw-side-0" + "x" * 4000})
    out = tmp_path / "out"
    config = tmp_path / "agent.yaml"
    config.write_text(
        "files:\n"
        "  db.json: {secret: 'secretsd://apps/web/db', mode: '0440'}\n"
        "  password: secretsd://apps/web/db#password\n"
    )
    process = subprocess.Popen(
        [secretsd_executable(), "agent", "sidecar", "--config", str(config), "--dir", str(out)],
        env=agent_env(server, tmp_path),
        stderr=subprocess.PIPE,
    )
    torn: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                content = (out / "password").read_bytes()
            except FileNotFoundError:
                continue
            if not (content.startswith(b"pw-side-") and content.endswith(b"x" * 4000)):
                torn.append(content[:20])

    try:
        wait_for(lambda: (out / "password").exists())
        thread = threading.Thread(target=reader)
        thread.start()
        delays = []
        for round_ in range(1, 6):
            expected = f"pw-side-{round_}".encode() + b"x" * 4000
            started = time.monotonic()
            sdk.put("apps/web/db", {"password": expected.decode()})
            wait_for(lambda e=expected: (out / "password").read_bytes() == e, 5)
            delays.append(time.monotonic() - started)
        stop.set()
        thread.join()
        assert max(delays) < 1.0, delays
        assert torn == []
        assert stat.S_IMODE((out / "db.json").stat().st_mode) == 0o440
        assert stat.S_IMODE((out / "password").stat().st_mode) == 0o400
    finally:
        stop.set()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        CANARY.texts.append(("stderr of the sidecar", err.decode(errors="replace")))
    assert process.returncode == 0, err.decode()


def test_last_good_file_stays_while_secretsd_is_down_and_updates_resume(
    server_factory: Any, tmp_path: Path
) -> None:
    first: RunningServer = server_factory(max_wait=1.0)
    port = int(first.url.rsplit(":", 1)[1])
    out = tmp_path / "out"
    with Client(first.url, ADMIN_TOKEN, auto_renew=False, cache_ttl=0) as sdk:
        sdk.put("apps/down", {"k": "value-before-down"})
    config = tmp_path / "agent.yaml"
    config.write_text("files:\n  k: secretsd://apps/down#k\n")
    process = subprocess.Popen(
        [secretsd_executable(), "agent", "sidecar", "--config", str(config), "--dir", str(out)],
        env=agent_env(first, tmp_path),
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: (out / "k").exists())
        first.stop()
        time.sleep(2.0)
        assert (out / "k").read_bytes() == b"value-before-down"
        assert process.poll() is None, "the sidecar must ride out an outage"
        again = start_on_port(first.settings, port)
        try:
            with Client(again.url, ADMIN_TOKEN, auto_renew=False, cache_ttl=0) as sdk:
                sdk.put("apps/down", {"k": "value-after-down"})
            wait_for(lambda: (out / "k").read_bytes() == b"value-after-down", 15)
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
            again.stop()
    finally:
        if process.poll() is None:
            process.kill()
    CANARY.texts.append(("stderr of the sidecar", err.decode(errors="replace")))


HUP_CATCHER = """
import signal, sys, time
from pathlib import Path
marker = Path(sys.argv[1])
def on_hup(number, frame):
    with marker.open("a") as f:
        f.write("HUP\\n")
signal.signal(signal.SIGHUP, on_hup)
Path(sys.argv[2]).write_text("ready")
while True:
    time.sleep(0.05)
"""


def test_signal_reaches_the_app_by_process_name(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/sig", {"k": "one-value"})
    marker, ready = tmp_path / "hups", tmp_path / "ready"
    script = tmp_path / "catcher.py"
    script.write_text(HUP_CATCHER)
    name = f"hupapp{os.getpid() % 100000}"
    app = subprocess.Popen([name, str(script), str(marker), str(ready)], executable=sys.executable)
    out = tmp_path / "out"
    config = tmp_path / "agent.yaml"
    config.write_text(f"on_change: signal:HUP:{name}\nfiles:\n  k: secretsd://apps/sig#k\n")
    agent = None
    try:
        wait_for(lambda: ready.exists())
        from secretsd.agent.config import from_yaml as load

        with Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0) as client:
            agent = Agent(load(config), out, client)
            thread = threading.Thread(target=agent.run_sidecar)
            thread.start()
            wait_for(lambda: (out / "k").exists())
            assert not marker.exists(), "the first render is not a change"
            sdk.put("apps/sig", {"k": "two-value"})
            wait_for(lambda: marker.exists() and marker.read_text() == "HUP\n", 5)
            agent.stop()
            thread.join(10)
            agent.close()
    finally:
        app.kill()
        app.wait()


def test_exec_action_runs_once_per_change(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/ex", {"a": "1-value", "b": "2-value"})
    log = tmp_path / "exec.log"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import os, sys\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    f.write(os.environ['SECRETSD_CHANGED_FILES'] + '\\n')\n"
    )
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"on_change: 'exec:{sys.executable} {hook} {log}'\n"
        "files:\n  a: secretsd://apps/ex#a\n  b: secretsd://apps/ex#b\n"
    )
    out = tmp_path / "out"
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0) as client:
        agent = Agent(from_yaml(config), out, client)
        thread = threading.Thread(target=agent.run_sidecar)
        thread.start()
        try:
            wait_for(lambda: (out / "b").exists())
            sdk.put("apps/ex", {"a": "1-value", "b": "3-value"})
            wait_for(lambda: log.exists() and log.read_text() == "b\n", 5)
            sdk.put("apps/ex", {"a": "4-value", "b": "5-value"})
            wait_for(lambda: log.read_text() == "b\na b\n", 5)
        finally:
            agent.stop()
            thread.join(10)
            agent.close()


def test_sidecar_keeps_going_when_a_key_disappears(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/keys", {"a": "a-value-1"})
    out = tmp_path / "out"
    config = tmp_path / "agent.yaml"
    config.write_text("files:\n  a: secretsd://apps/keys#a\n")
    with Client(server.url, ADMIN_TOKEN, auto_renew=False, watch_wait=1.0) as client:
        agent = Agent(from_yaml(config), out, client)
        thread = threading.Thread(target=agent.run_sidecar)
        thread.start()
        try:
            wait_for(lambda: (out / "a").exists())
            sdk.put("apps/keys", {"other": "x-value-1"})
            time.sleep(1.0)
            assert (out / "a").read_bytes() == b"a-value-1"
            sdk.put("apps/keys", {"a": "a-value-2"})
            wait_for(lambda: (out / "a").read_bytes() == b"a-value-2", 5)
        finally:
            agent.stop()
            thread.join(10)
            agent.close()


def test_render_errors_name_the_file_never_the_value(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    sdk.put("apps/t", {"k": "tmpl-secret-value"})
    config = tmp_path / "agent.yaml"
    config.write_text("files:\n  bad: {template: \"{{ secret('secretsd://apps/t')['nope'] }}\"}\n")
    with Client(server.url, ADMIN_TOKEN, auto_renew=False) as client:
        agent = Agent(from_yaml(config), tmp_path / "out", client)
        with pytest.raises(ConfigError) as error:
            agent.render_all()
    assert error.value.message.startswith("bad: template: ")
    assert "tmpl-secret-value" not in error.value.message
    config.write_text("files:\n  bad: {template: \"{{ ''.__class__.__mro__ }}\"}\n")
    with Client(server.url, ADMIN_TOKEN, auto_renew=False) as client:
        agent = Agent(from_yaml(config), tmp_path / "out", client)
        with pytest.raises(ConfigError, match="unsafe"):
            agent.render_all()
    with Client(server.url, ADMIN_TOKEN, auto_renew=False) as client:
        agent = Agent(from_yaml(config), tmp_path / "out", client)
        with pytest.raises(NotFound):
            agent._lookup("apps/none", None)


# -- Kubernetes login with the projected token ------------------------------------------


def test_agent_logs_in_with_the_projected_token_and_logs_in_again_after_expiry(
    server: RunningServer, sdk: Client, tmp_path: Path
) -> None:
    """The pod's view: a role annotation, a token file, no secretsd token anywhere."""
    from tests.test_kubernetes_login import ISSUER, keypair, projected

    key, public = keypair("ec")
    sdk.request(
        "PUT", "/v1/auth/kubernetes/config", json={"issuer": ISSUER, "public_keys": [public]}
    )
    sdk.request(
        "PUT",
        "/v1/policies/shop-read",
        json={"rules": [{"path": "shop/**", "capabilities": ["read"]}]},
    )
    sdk.request(
        "PUT",
        "/v1/auth/kubernetes/roles/shop-web",
        json={
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["shop"],
            "policies": ["shop-read"],
            "token_ttl": 2,
            "token_max_ttl": 2,
        },
    )
    sdk.put("shop/db", {"password": "k8s-agent-pw-1"})
    token_file = tmp_path / "token"
    token_file.write_text(projected(key, "shop", "web"))
    annotations = write_annotations(
        tmp_path / "annotations",
        {
            "secretsd.io/inject": "true",
            "secretsd.io/role": "shop-web",
            "secretsd.io/secret-password": "secretsd://shop/db#password",
        },
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(SECRETSD_ADDR=server.url, SECRETSD_K8S_TOKEN_FILE=str(token_file))
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    args = ["--annotations", str(annotations), "--dir", str(out)]
    init = subprocess.run(
        [secretsd_executable(), "agent", "init", *args], env=env, capture_output=True, timeout=60
    )
    assert init.returncode == 0, init.stderr.decode()
    assert (out / "password").read_bytes() == b"k8s-agent-pw-1"
    process = subprocess.Popen(
        [secretsd_executable(), "agent", "sidecar", *args], env=env, stderr=subprocess.PIPE
    )
    try:
        time.sleep(4.0)  # the first token (2 s, not renewable past its max) has expired
        # The kubelet rotated the projected token meanwhile.
        token_file.write_text(projected(key, "shop", "web"))
        sdk.put("shop/db", {"password": "k8s-agent-pw-2"})
        started = time.monotonic()
        wait_for(lambda: (out / "password").read_bytes() == b"k8s-agent-pw-2", 15)
        assert time.monotonic() - started < 5
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    CANARY.texts.append(("stderr of the k8s sidecar", err.decode(errors="replace")))
    assert process.returncode == 0, err.decode()
    logins = sdk.request("GET", "/v1/audit", params={"action": "login", "outcome": "allowed"})
    assert len(logins["records"]) >= 3, "init, sidecar start and at least one re-login"


def test_go_quoting_and_yaml_modes_and_owner(tmp_path: Path) -> None:
    from secretsd.agent.files import write_atomic

    path = tmp_path / "annotations"
    path.write_text('a="caf\u00e9 \\u00e9\\t\\x41\\"q\\\\"\nb=""\n')
    assert parse_annotations_file(path) == {"a": 'café é\tA"q\\', "b": ""}
    path.write_text('a="unterminated\n')
    with pytest.raises(ConfigError, match=":1: the value is not a double-quoted string"):
        parse_annotations_file(path)
    path.write_text('a="bad \\q escape"\n')
    with pytest.raises(ConfigError, match="bad escape"):
        parse_annotations_file(path)
    config = tmp_path / "agent.yaml"
    config.write_text(
        "files:\n  a: {secret: 'secretsd://x#k', mode: 0440}\n  b: {secret: 'secretsd://x#k', mode: 600}\n"
    )
    modes = {o.name: o.mode for o in from_yaml(config).outputs}
    assert modes == {"a": 0o440, "b": 0o600}
    target = tmp_path / "owned"
    uid, gid = os.getuid(), os.getgid()
    assert write_atomic(target, b"x", mode=0o440, uid=uid, gid=gid)
    info = target.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, 0o440)
    assert not write_atomic(target, b"x", mode=0o440, uid=uid, gid=gid), "unchanged: not rewritten"
    assert write_atomic(target, b"x", mode=0o400), "a new mode is a change"
