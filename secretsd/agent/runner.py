"""The agent's two modes: render once (init container) and keep files current (sidecar).

The sidecar renders every output, then watches each path the outputs read
through the SDK's ``watch`` (one shared long-poll per path, however many
files use it). A new version is stored in a snapshot and the outputs that
read that path are rendered again; changed files are replaced atomically
and the on-change action runs once per batch. Errors (secretsd stopped, a
permission revoked, a key removed) leave the last good files in place; the
agent backs off and tries again until it works. Logins, renewals and
re-logins with the (rotating) projected token are the SDK's job.

Given a ``ConfigSource``, the sidecar also follows its configuration: when
the annotations file (or the YAML file) changes, outputs that were added or
changed are rendered, removed ones have their file deleted, and watches of
paths nothing reads any more are stopped (the shared watches of the other
paths keep running). A configuration that does not parse is logged and
ignored, leaving the current files and configuration in place. ``role``,
``addr`` and ``dir`` changes need a restart (the login and the volume are
set up once); they are logged and ignored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from secretsd.agent.actions import run_on_change
from secretsd.agent.config import AgentConfig, Output
from secretsd.agent.files import prepare_dir, write_atomic
from secretsd.agent.reload import ConfigSource
from secretsd.agent.render import Rendered, render
from secretsd.backends.base import SecretVersion
from secretsd.client import Client, ClientSettings, Watch, load_client_settings
from secretsd.errors import ConfigError, SecretsdError

__all__ = ["Agent", "client_settings"]

log = logging.getLogger(__name__)

#: Re-render everything this often even without a change (a missed event heals).
RESYNC_SECONDS = 300.0
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
#: Held versions are reported this often without a change (secretsd.consumers.LIVE_SECONDS
#: counts a consumer as live for three heartbeats).
HEARTBEAT_SECONDS = 60.0
#: How often the sidecar looks at its configuration files (one stat each).
RELOAD_CHECK_SECONDS = 1.0


def client_settings(config: AgentConfig) -> ClientSettings:
    """The SDK's settings from the environment; a configured role means Kubernetes login."""
    settings = load_client_settings(addr=config.addr, use_login_file=config.role is None)
    if config.role is not None:
        settings = replace(
            settings,
            token=None,
            token_file=None,
            role_id=None,
            secret_id=None,
            secret_id_file=None,
            k8s_role=config.role,
            credentials_from="Kubernetes login",
        )
    return settings


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        directory: Path,
        client: Client,
        *,
        on_rendered: Callable[[dict[str, int]], None] | None = None,
        source: ConfigSource | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._reload_due = False
        self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
        self.directory = directory
        self.client = client
        self._snapshot: dict[str, SecretVersion] = {}
        self._lock = threading.Lock()
        self._changes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._watches: dict[str, Watch] = {}
        self._renders: dict[str, Rendered] = {}
        self._on_rendered = on_rendered
        self.stop_event = threading.Event()
        #: How often the held versions are reported even without a change (liveness).
        self.heartbeat = HEARTBEAT_SECONDS

    # -- rendering ----------------------------------------------------------------

    def _lookup(self, path: str, version: int | None) -> SecretVersion:
        if version is not None:
            return self.client.read(path, version)
        with self._lock:
            known = self._snapshot.get(path)
        if known is not None:
            return known
        secret = self.client.read(path)
        with self._lock:
            current = self._snapshot.get(path)
            if current is None or current.version < secret.version:
                self._snapshot[path] = secret
            return self._snapshot[path]

    def render_one(self, output: Output) -> bool:
        """Render and write one file; True if its content (or mode) changed."""
        rendered = render(output, self._lookup)
        changed = write_atomic(
            self.directory / output.name,
            rendered.content,
            mode=output.mode,
            uid=output.uid,
            gid=output.gid,
        )
        self._renders[output.name] = rendered
        return changed

    def held_versions(self) -> dict[str, int]:
        """path -> version of every secret the current files were rendered from."""
        held: dict[str, int] = {}
        for rendered in self._renders.values():
            for path, version in rendered.used.items():
                held[path] = max(version, held.get(path, 0))
        return held

    def render_all(self) -> list[str]:
        """Init mode: every output once; the first error is raised (files so far stay)."""
        prepare_dir(self.directory)
        changed = [output.name for output in self.config.outputs if self.render_one(output)]
        self._rendered()
        return changed

    def _rendered(self) -> None:
        if self._on_rendered is not None:
            try:
                self._on_rendered(self.held_versions())
            except SecretsdError as error:
                log.warning("reporting held versions failed: %s", error.message)

    # -- sidecar ----------------------------------------------------------------------

    def _deliver(self, secret: SecretVersion) -> None:
        """Watch callback (SDK thread): keep it short, hand over to the main loop."""
        with self._lock:
            current = self._snapshot.get(secret.path)
            if current is not None and current.version >= secret.version:
                return
            self._snapshot[secret.path] = secret
        self._changes.put(secret.path)

    def _watch_new_paths(self) -> None:
        wanted: set[str] = set()
        for rendered in self._renders.values():
            wanted |= rendered.watched
        for path in sorted(wanted - set(self._watches)):
            self._watches[path] = self.client.watch(path, self._deliver)
        for path in sorted(set(self._watches) - wanted):
            self._watches.pop(path).stop()

    def _pass(self, outputs: list[Output]) -> tuple[list[str], list[Output]]:
        """Render ``outputs``; the changed file names and the outputs that failed."""
        changed, failed = [], []
        for output in outputs:
            try:
                if self.render_one(output):
                    changed.append(output.name)
            except (SecretsdError, OSError) as error:
                message = error.message if isinstance(error, SecretsdError) else str(error)
                log.warning(
                    "rendering %s failed, keeping the last good file: %s", output.name, message
                )
                failed.append(output)
        return changed, failed

    def run_sidecar(self) -> None:
        """Keep the files current until ``stop_event`` is set."""
        prepare_dir(self.directory)
        pending = list(self.config.outputs)
        delay = 0.0
        next_resync = time.monotonic() + RESYNC_SECONDS
        next_report = time.monotonic() + self.heartbeat
        first = True
        while not self.stop_event.is_set():
            if self._reload_due:
                self._reload_due = False
                pending = self._reload(pending)
            changed, failed = self._pass(pending)
            # The first pass writes what the app starts with (the init container did the
            # same): not a change to announce.
            if changed and not first and self.config.on_change is not None:
                run_on_change(self.config.on_change, changed)
            first = False
            if changed or not failed or time.monotonic() >= next_report:
                self._rendered()
                next_report = time.monotonic() + self.heartbeat
            try:
                self._watch_new_paths()
            except SecretsdError as error:
                log.warning("watching failed: %s", error.message)
                failed = failed or list(self.config.outputs)
            delay = min(BACKOFF_MAX, max(BACKOFF_MIN, delay * 2)) if failed else 0.0
            pending = self._wait(failed, delay, min(next_resync, next_report))
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + RESYNC_SECONDS
                with self._lock:
                    self._snapshot.clear()
                pending = list(self.config.outputs)

    def _wait(self, failed: list[Output], delay: float, resync: float) -> list[Output]:
        """Block until a watched path changes (or the back-off or resync time is due)."""
        timeout = delay if failed else max(0.0, resync - time.monotonic())
        paths: set[str] = set()
        deadline = time.monotonic() + timeout
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._config_changed():
                break
            try:
                paths.add(self._changes.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                continue
            # Gather a burst of changes into one pass (one on-change for many files).
            time.sleep(0.02)
            while True:
                try:
                    paths.add(self._changes.get_nowait())
                except queue.Empty:
                    break
            break
        wanted = {output.name for output in failed}
        for output in self.config.outputs:
            rendered = self._renders.get(output.name)
            if rendered is None or rendered.watched & paths:
                wanted.add(output.name)
        return [output for output in self.config.outputs if output.name in wanted]

    # -- following the configuration ----------------------------------------------------

    def _config_changed(self) -> bool:
        """At most once per RELOAD_CHECK_SECONDS: did a configuration file change?"""
        if self.source is None or time.monotonic() < self._next_check:
            return False
        self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
        if self.source.changed():
            self._reload_due = True
        return self._reload_due

    def _reload(self, pending: list[Output]) -> list[Output]:
        """Apply the new configuration; the outputs to render (``pending`` kept by name)."""
        assert self.source is not None
        try:
            new = self.source.load()
        except ConfigError as error:
            log.warning(
                "the new configuration is not valid, keeping the current one and its files: %s",
                error.message,
            )
            return pending
        old = self.config
        for field in ("role", "addr", "dir"):
            if getattr(new, field) != getattr(old, field):
                log.warning("%s changed in the configuration: that takes a restart", field)
        self.config = replace(new, role=old.role, addr=old.addr, dir=old.dir)
        before = {output.name: output for output in old.outputs}
        after = {output.name for output in self.config.outputs}
        for name in sorted(set(before) - after):
            self._renders.pop(name, None)
            try:
                (self.directory / name).unlink(missing_ok=True)
            except OSError as error:
                log.warning("cannot remove %s (no longer configured): %s", name, error.strerror)
        wanted = {output.name for output in pending}
        return [
            output
            for output in self.config.outputs
            if output.name in wanted or before.get(output.name) != output
        ]

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self._watches.clear()
