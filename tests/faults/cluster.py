"""Real processes for fault and scale-out tests: an OpenBao Raft cluster and secretsd replicas.

- :class:`BaoCluster`: N ``bao server`` processes on loopback ports, Raft storage in
  temporary directories, one shared ``static`` seal key (as ``secretsd/embedded.py``
  uses), so every node comes up unsealed by itself; node 0 is initialised over
  ``/v1/sys/init``, the others ``retry_join`` it. Nodes can be SIGKILLed, restarted,
  SIGSTOPped and resumed, and the harness waits for a (new) leader.
- :class:`Replica`: one real ``secretsd serve`` process (its own parent and workers)
  on PostgreSQL, pointing at the cluster; SIGKILL and restart it.

Used by ``tests/faults/`` and ``bench/soak.py``; nothing here is a mock.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from secretsd.embedded import find_bao_binary

__all__ = [
    "BaoCluster",
    "BaoNode",
    "Replica",
    "audit_verify_command",
    "free_port",
    "secretsd_command",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "SECRETSD_")) and k != "XDG_CONFIG_HOME"
    }


@dataclass
class BaoNode:
    """One OpenBao server of the cluster."""

    index: int
    root: Path
    api_port: int
    cluster_port: int
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def node_id(self) -> str:
        return f"node{self.index}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class BaoCluster:
    """A Raft cluster of ``size`` OpenBao nodes on loopback ports."""

    root: Path
    size: int = 3
    nodes: list[BaoNode] = field(default_factory=list)
    root_token: str = ""
    mount: str = "secret"
    #: OpenBao's default lets standbys answer reads from their own (possibly lagging) Raft
    #: copy: a read through another node right after a write may miss it. secretsd needs
    #: read-after-write across replicas, so the harness turns that off (README "Scale-out").
    standby_reads: bool = False

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.seal_key = self.root / "seal.key"
        self.seal_key.write_bytes(secrets.token_bytes(32))
        os.chmod(self.seal_key, 0o600)
        for index in range(self.size):
            node_root = self.root / f"node{index}"
            (node_root / "raft").mkdir(parents=True)
            self.nodes.append(BaoNode(index, node_root, free_port(), free_port()))

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 60.0) -> BaoCluster:
        """Start node 0, initialise it, join the others, wait for every voter and KV v2."""
        for node in self.nodes:
            self._write_config(node)
        self.spawn(self.nodes[0])
        self._wait(lambda: self._status(self.nodes[0]) is not None, timeout, "node0 answering")
        answer = httpx.put(
            f"{self.nodes[0].addr}/v1/sys/init",
            json={"recovery_shares": 1, "recovery_threshold": 1},
            timeout=30,
        )
        answer.raise_for_status()
        self.root_token = answer.json()["root_token"]
        leader = self.wait_leader(timeout)
        # Autopilot promotes a joined node to voter after it was stable this long (10 s
        # by default); loopback nodes are stable at once.
        httpx.post(
            f"{leader.addr}/v1/sys/storage/raft/autopilot/configuration",
            headers=self.headers,
            json={"server_stabilization_time": "1s", "cleanup_dead_servers": False},
            timeout=30,
        ).raise_for_status()
        for node in self.nodes[1:]:
            self.spawn(node)
        self._wait(lambda: len(self.voters()) == self.size, timeout, "all nodes voters")
        for node in self.nodes:
            self._wait(lambda n=node: self._unsealed(n), timeout, f"{node.node_id} unsealed")
        leader = self.wait_leader(timeout)
        answer = httpx.post(
            f"{leader.addr}/v1/sys/mounts/{self.mount}",
            headers=self.headers,
            json={"type": "kv", "options": {"version": "2"}},
            timeout=30,
        )
        answer.raise_for_status()
        return self

    def spawn(self, node: BaoNode) -> None:
        log = (node.root / "bao.log").open("ab")
        try:
            node.process = subprocess.Popen(
                [
                    find_bao_binary(),
                    "server",
                    f"-config={node.root / 'bao.hcl'}",
                    "-log-level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                start_new_session=True,
            )
        finally:
            log.close()
        node.stopped = False

    def kill(self, node: BaoNode) -> None:
        """SIGKILL: no clean leadership hand-off, as a crashed machine."""
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)

    def restart(self, node: BaoNode, timeout: float = 60.0) -> None:
        self.kill(node)
        self.spawn(node)
        self._wait(lambda: self._unsealed(node), timeout, f"{node.node_id} unsealed again")

    def freeze(self, node: BaoNode) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a hung node)."""
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGSTOP)
        node.stopped = True

    def thaw(self, node: BaoNode) -> None:
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGCONT)
        node.stopped = False

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is None:
                continue
            if node.stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.process.pid, signal.SIGCONT)
            if node.process.poll() is None:
                node.process.terminate()
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(5)

    # -- observation -----------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Vault-Token": self.root_token}

    @property
    def addrs(self) -> list[str]:
        return [node.addr for node in self.nodes]

    def leader(self) -> BaoNode | None:
        """The active node as the live, unfrozen nodes agree on it (None during an election)."""
        for node in self.nodes:
            if not node.alive() or node.stopped:
                continue
            try:
                answer = httpx.get(f"{node.addr}/v1/sys/leader", timeout=2)
                body = answer.json()
            except (httpx.HTTPError, ValueError):
                continue
            address = body.get("leader_address") or ""
            for candidate in self.nodes:
                if (
                    address.rstrip("/") == candidate.addr
                    and candidate.alive()
                    and self._status(candidate) == "active"
                ):
                    return candidate
        return None

    def wait_leader(self, timeout: float = 60.0, not_node: BaoNode | None = None) -> BaoNode:
        found: list[BaoNode] = []

        def check() -> bool:
            leader = self.leader()
            if leader is not None and leader is not not_node:
                found.append(leader)
                return True
            return False

        self._wait(check, timeout, "a Raft leader")
        return found[-1]

    def voters(self) -> list[str]:
        for node in self.nodes:
            if not node.alive() or node.stopped:
                continue
            try:
                answer = httpx.get(
                    f"{node.addr}/v1/sys/storage/raft/configuration",
                    headers=self.headers,
                    timeout=2,
                )
                if answer.status_code != 200:
                    continue
                servers = answer.json()["data"]["config"]["servers"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
            return [s["node_id"] for s in servers if s.get("voter")]
        return []

    def _status(self, node: BaoNode) -> str | None:
        """'active', 'standby', 'sealed', 'uninit' or None when it does not answer."""
        try:
            answer = httpx.get(
                f"{node.addr}/v1/sys/health",
                params={"standbyok": "false", "perfstandbyok": "false"},
                timeout=2,
            )
        except httpx.HTTPError:
            return None
        return {200: "active", 429: "standby", 473: "standby", 501: "uninit", 503: "sealed"}.get(
            answer.status_code, "other"
        )

    def _unsealed(self, node: BaoNode) -> bool:
        return self._status(node) in ("active", "standby")

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _write_config(self, node: BaoNode) -> None:
        joins = "".join(
            f'  retry_join {{\n    leader_api_addr = "{other.addr}"\n  }}\n'
            for other in self.nodes
            if other is not node
        )
        text = (
            "ui = false\n"
            "disable_mlock = true\n"
            f"disable_standby_reads = {'false' if self.standby_reads else 'true'}\n"
            f'api_addr = "{node.addr}"\n'
            f'cluster_addr = "http://127.0.0.1:{node.cluster_port}"\n'
            'storage "raft" {\n'
            f'  path = "{node.root / "raft"}"\n'
            f'  node_id = "{node.node_id}"\n'
            "  performance_multiplier = 1\n"
            f"{joins}"
            "}\n"
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{node.api_port}"\n'
            f'  cluster_address = "127.0.0.1:{node.cluster_port}"\n'
            "  tls_disable = true\n"
            "}\n"
            'seal "static" {\n'
            '  current_key_id = "proof-1"\n'
            f'  current_key = "file://{self.seal_key}"\n'
            "}\n"
        )
        (node.root / "bao.hcl").write_text(text)


def secretsd_command() -> list[str]:
    """The ``secretsd`` console script beside the running Python (a venv need not be on PATH)."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "secretsd"
    found = str(beside) if beside.is_file() else shutil.which("secretsd")
    assert found, "the secretsd console script is not installed (pip install -e '.[test]')"
    return [found]


@dataclass
class Replica:
    """One ``secretsd serve`` process group (parent + workers) on a shared database."""

    name: str
    root: Path
    database_url: str
    vault_addr: str
    vault_token: str
    admin_token: str
    vault_prefix: str = "proof"
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = _clean_env()
        env.update(
            SECRETSD_DATA_DIR=str(self.root / "data"),
            SECRETSD_DATABASE_URL=self.database_url,
            SECRETSD_VAULT_ADDR=self.vault_addr,
            SECRETSD_VAULT_TOKEN=self.vault_token,
            SECRETSD_VAULT_PREFIX=self.vault_prefix,
            SECRETSD_BOOTSTRAP_TOKEN=self.admin_token,
            SECRETSD_LOG_LEVEL="warning",
            XDG_CONFIG_HOME=str(self.root / "config"),
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> Replica:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "serve.log").open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    *secretsd_command(),
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: kill_group reaches the workers
            )
        finally:
            log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"replica {self.name} exited with {self.process.returncode}: {self.log()[-2000:]}"
                )
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=2)
                if answer.status_code == 200:
                    return
                last = answer.status_code
            except httpx.HTTPError as error:
                last = type(error).__name__
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} not ready after {timeout:.0f} s ({last})")

    def log(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the parent only, as the OOM killer or ``kill -9`` would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the parent and every worker it started (its own process group)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        self.kill_group()

    def client(self, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=timeout,
        )


def audit_verify_command(replicas: list[Replica]) -> list[str]:
    """``secretsd audit verify --json``, given every replica's audit key when they have one
    (each replica keys the records it writes with the ``audit.key`` in its data dir)."""
    command = [*secretsd_command(), "audit", "verify", "--json"]
    for replica in replicas:
        key = Path(replica.env["SECRETSD_DATA_DIR"]) / "audit.key"
        if key.is_file():
            command += ["--key-file", str(key)]
    return command
