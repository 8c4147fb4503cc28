"""Worker processes of ``secretsd serve``: supervised with back-off, tied to their parent.

- **Back-off.** uvicorn's supervisor restarts a dead worker at once, every
  time: a worker that dies at once again (a full disk, a broken dependency)
  becomes a restart loop that eats every core, and even ``/healthz`` goes
  unanswered. :class:`BackoffMultiprocess` restarts the first death at once,
  then waits 0.5 s, 1 s, 2 s ... up to 30 s while the worker keeps dying
  within 30 s of its start.
- **Dying with the parent.** A SIGKILLed ``serve`` cannot stop its workers;
  they would keep the port and answer 503 forever, and the next ``serve``
  fails with "address already in use". Each worker asks Linux for SIGTERM
  when its parent dies (``PR_SET_PDEATHSIG``) and checks that the parent it
  was started for is still its parent (it may have died before the request).
- **Settings.** The parent's resolved settings (secrets included) reach the
  workers in a 0600 file in the private data dir, never in the environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import shutil
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from secretsd.config import RESOLVED_ENV, SECRET_ENV, Settings, settings_to_env
from secretsd.errors import Unavailable

__all__ = [
    "PARENT_ENV",
    "BackoffMultiprocess",
    "answers",
    "die_with_parent",
    "hand_settings_to_workers",
    "restart_delay",
]

log = logging.getLogger(__name__)

#: The pid of the ``serve`` process that started this worker.
PARENT_ENV = "SECRETSD_SERVE_PID"
_PR_SET_PDEATHSIG = 1

#: A worker that lived shorter than this died "at once": the next restart waits.
MIN_LIFETIME = 30.0
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before restarting a worker that died at once ``quick_deaths`` times."""
    if quick_deaths <= 1:
        return 0.0
    return float(min(MAX_DELAY, FIRST_DELAY * 2 ** (quick_deaths - 2)))


class BackoffMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, restarting crashing workers with exponential back-off."""

    def init_processes(self) -> None:
        super().init_processes()
        now = time.monotonic()
        self._started = [now] * len(self.processes)
        self._quick_deaths = [0] * len(self.processes)
        self._due: dict[int, float] = {}

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        while len(self._started) < len(self.processes):  # SIGTTIN added one
            self._started.append(time.monotonic())
            self._quick_deaths.append(0)
        for index, process in enumerate(self.processes):
            now = time.monotonic()
            due = self._due.get(index)
            if due is not None:
                if now >= due and not self.should_exit.is_set():
                    del self._due[index]
                    self._start(index)
                continue
            if answers(process, timeout=self.config.timeout_worker_healthcheck):
                if now - self._started[index] >= MIN_LIFETIME:
                    self._quick_deaths[index] = 0
                continue
            process.kill()  # hung, or already dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker [%s] failed to start; stopping secretsd", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            lived = now - self._started[index]
            self._quick_deaths[index] = self._quick_deaths[index] + 1 if lived < MIN_LIFETIME else 0
            delay = restart_delay(self._quick_deaths[index])
            log.warning(
                "worker [%s] died (exit code %s) after %.1f s; restarting it%s",
                process.pid,
                process.exitcode,
                lived,
                f" in {delay:g} s" if delay else "",
            )
            self._due[index] = now + delay
            if not delay:
                del self._due[index]
                self._start(index)

    def _start(self, index: int) -> None:
        process = Process(self.config, self.sockets)
        process.start()
        self.processes[index] = process
        self._started[index] = time.monotonic()


def answers(process: Process, timeout: float) -> bool:
    """Whether ``process`` is alive and answers a health ping within ``timeout`` seconds.

    uvicorn's own check waits the whole timeout (5 s) when the worker dies
    between its liveness test and its ping, because the supervisor holds both
    ends of the pipe and never sees EOF. Waiting on the process sentinel too
    notices that death at once, so the first restart really is immediate.
    """
    if not process.process.is_alive():
        return False
    try:
        process.parent_conn.send(b"ping")
        ready = wait([process.parent_conn, process.process.sentinel], timeout)
        if process.parent_conn not in ready:
            return False
        process.parent_conn.recv()
    except (OSError, EOFError, pickle.UnpicklingError):
        return False
    return True


def die_with_parent() -> None:
    """In a worker: SIGTERM when the ``serve`` parent dies; exit now if it already has."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or expected == str(os.getpid()):
        return  # not a worker of `secretsd serve` (tests, the single-process server)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != expected:  # the parent died before prctl took effect
        log.error("secretsd serve (pid %s) is gone; this worker exits", expected)
        os._exit(1)


def remove_stale_run_files(run_dir: Path) -> None:
    """Remove what a killed ``serve`` left behind: its settings file and metrics folder."""
    for item in run_dir.glob("*-*"):
        name, _, pid = item.name.partition("-")
        pid = pid.removesuffix(".json")
        if name not in ("settings", "metrics") or not pid.isdigit() or _running(int(pid)):
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hand_settings_to_workers(settings: Settings, run_dir: Path) -> Path:
    """Write the workers' settings to a 0600 file; scrub secrets from our environment.

    Returns the file, which the caller removes on the way out. Only its path
    goes into the environment the workers inherit.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    remove_stale_run_files(run_dir)
    path = run_dir / f"settings-{os.getpid()}.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(settings_to_env(settings))
    except OSError as error:
        path.unlink(missing_ok=True)
        raise Unavailable(
            f"cannot write the workers' settings to {path} ({error.strerror}); "
            "free space in the data dir or fix its permissions"
        ) from None
    for name in SECRET_ENV:
        os.environ.pop(name, None)
    os.environ[RESOLVED_ENV] = str(path)
    os.environ[PARENT_ENV] = str(os.getpid())
    return path
