"""What the agent does after a rendered file changed: signal the app or run a command.

``signal:HUP:nginx`` signals every process named ``nginx`` (its
``/proc/<pid>/comm``, or the base name of its first argument), which the
agent can see when the pod shares its process namespace
(``shareProcessNamespace: true``, which the injector sets when on-change is a
signal). Bare ``signal:HUP`` signals every process of the pod but the pause
container (PID 1) and the agent itself; it is refused where PID 1 is not a
pod's pause process, so outside Kubernetes a process name is required.
``exec:<command>`` runs the command (no shell; split like a shell would)
with a time limit.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal as signals
import subprocess
from pathlib import Path

from secretsd.agent.config import OnChange
from secretsd.errors import ConfigError

__all__ = ["find_processes", "run_on_change"]

log = logging.getLogger(__name__)
_PROC = Path("/proc")
EXEC_TIMEOUT = 60.0


def _name_of(pid: int) -> tuple[str, str]:
    base = _PROC / str(pid)
    try:
        comm = (base / "comm").read_text().strip()
        argv0 = (base / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return "", ""
    return comm, os.path.basename(argv0)


def _in_pod() -> bool:
    return _name_of(1)[0] == "pause"


def _own_tree() -> set[int]:
    """This process and its ancestors (signalling them would hit the agent itself)."""
    mine = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return mine


def find_processes(name: str) -> list[int]:
    """Visible processes with that name (empty name: every process of the pod but ours)."""
    if not name and not _in_pod():
        raise ConfigError(
            "signal:<NAME> without a process name only works in a pod with a shared process "
            "namespace; write signal:HUP:<process-name>"
        )
    skip = _own_tree() | {1}
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in skip:
            continue
        comm, argv0 = _name_of(pid)
        if not comm:
            continue
        if (not name and comm != "pause") or name in (comm, argv0):
            found.append(pid)
    return sorted(found)


def run_on_change(action: OnChange, changed: list[str]) -> None:
    """Run the action once for a batch of changed files; failures are logged, not raised."""
    if action.kind == "signal":
        number = getattr(signals, action.signal)
        try:
            targets = find_processes(action.process)
        except ConfigError as error:
            log.error("on-change: %s", error.message)
            return
        if not targets:
            log.warning("on-change: no process named %r to send %s", action.process, action.signal)
        for pid in targets:
            try:
                os.kill(pid, number)
                log.info("on-change: sent %s to pid %d", action.signal, pid)
            except (ProcessLookupError, PermissionError) as error:
                log.warning("on-change: cannot signal pid %d: %s", pid, error.strerror)
        return
    argv = shlex.split(action.command)
    environment = dict(os.environ, SECRETSD_CHANGED_FILES=" ".join(changed))
    try:
        done = subprocess.run(
            argv, env=environment, timeout=EXEC_TIMEOUT, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.error("on-change: exec %s failed: %s", argv[0], type(error).__name__)
        return
    if done.returncode:
        log.warning("on-change: exec %s exited %d", argv[0], done.returncode)
