"""Which version of each secret this process holds, and when to tell secretsd (no I/O).

``secretsd rotate <path> --wait`` waits until every live consumer of a path
holds the new version; for an SDK process "holds" means the latest version
it last read (``get``, ``get_map``, ``read``, ``resolve`` or a watch). A read
only notes the version here (a dict lookup under a lock): sending happens on
a background thread or task of the shell, so a report never slows or fails a
read. Reports are batched and throttled:

- a version this process had not reported yet goes out at once, unless a
  report left less than ``min_interval`` seconds ago (then at the end of it,
  together with whatever else was read meanwhile);
- every ``heartbeat`` seconds everything held is reported again, which keeps
  the process "live" (``secretsd.consumers.LIVE_SECONDS``);
- a failed report is retried with backoff (up to ``heartbeat``); an old
  service without ``/v1/consumers`` turns reporting off for the client.

Reads of a pinned version (``?version=n``) are not noted: holding an old
version on purpose is not lagging behind a rotation.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

__all__ = ["MAX_PATHS_PER_REPORT", "HeldVersions", "ReportBatch", "consumer_name"]

#: The service accepts up to 500 paths per report.
MAX_PATHS_PER_REPORT = 500


def consumer_name(*, process: bool = True) -> str:
    """How this process is named in ``GET /v1/consumers/<path>``.

    In a pod, ``POD_NAME`` and ``POD_NAMESPACE`` (the downward API; the injector
    sets them) give ``pod/<namespace>/<pod>``; elsewhere ``host/<hostname>/<pid>``.
    ``process`` adds ``/pid-<pid>`` to a pod's name, so an application's SDK and
    the pod's agent sidecar (which passes ``process=False``) are two consumers.
    """
    pod, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if pod:
        name = f"pod/{namespace}/{pod}" if namespace else f"pod/{pod}"
        return f"{name}/pid-{os.getpid()}" if process else name
    return f"host/{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ReportBatch:
    """One ``PUT /v1/consumers`` body's worth: versions held, paths let go."""

    versions: dict[str, int]
    released: tuple[str, ...] = ()

    def body(self, consumer: str) -> dict[str, object]:
        body: dict[str, object] = {"consumer": consumer, "kind": "sdk", "versions": self.versions}
        if self.released:
            body["released"] = list(self.released)
        return body


class HeldVersions:
    """The ledger behind a client's reports; thread-safe, clock passed in (for tests)."""

    def __init__(self, *, min_interval: float = 1.0, heartbeat: float = 60.0) -> None:
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.enabled = True
        self._held: dict[str, int] = {}
        self._pending: set[str] = set()
        self._last_sent = float("-inf")
        self._last_full = float("-inf")
        self._failures = 0
        self._failed_round = float("nan")
        self._lock = threading.Lock()

    def note(self, path: str, version: int) -> bool:
        """Record that ``version`` (the latest) of ``path`` was read; True if that is news."""
        if not self.enabled or self._held.get(path) == version:
            return False  # the hot path: no lock when nothing changes
        with self._lock:
            if self._held.get(path, 0) >= version:
                return False  # an older answer arriving late changes nothing
            self._held[path] = version
            self._pending.add(path)
        return True

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def _next_at(self) -> float:
        backoff = min(self.heartbeat, self.min_interval * 2.0**self._failures)
        after_last = self._last_sent + (backoff if self._failures else self.min_interval)
        if self._pending:
            return after_last
        if self._held:
            return max(after_last, self._last_full + self.heartbeat)
        return float("inf")

    def wait_time(self, now: float | None = None) -> float:
        """Seconds until a report is due (``inf`` when nothing is held)."""
        now = time.monotonic() if now is None else now
        if not self.enabled:
            return float("inf")
        with self._lock:
            return max(0.0, self._next_at() - now)

    def take(self, now: float | None = None) -> list[ReportBatch]:
        """The reports due now (empty if none); they count as sent until ``failed``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self.enabled or now < self._next_at():
                return []
            full = now >= self._last_full + self.heartbeat
            paths = sorted(self._held if full else self._pending)
            self._pending.clear()
            self._last_sent = now
            if full:
                self._last_full = now
            chunks = [
                paths[i : i + MAX_PATHS_PER_REPORT]
                for i in range(0, len(paths), MAX_PATHS_PER_REPORT)
            ]
            return [ReportBatch({p: self._held[p] for p in chunk}) for chunk in chunks]

    def sent(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, batch: ReportBatch) -> None:
        """Send these paths again after a backoff."""
        with self._lock:
            if self._failed_round != self._last_sent:  # once per round of batches
                self._failed_round = self._last_sent
                self._failures += 1
            self._pending.update(p for p in batch.versions if p in self._held)

    def disable(self) -> None:
        """The service cannot take reports: stop noting and sending."""
        with self._lock:
            self.enabled = False
            self._pending.clear()

    def release(self) -> list[ReportBatch]:
        """Closing: every held path, to be dropped from the service's list."""
        with self._lock:
            paths = sorted(self._held) if self.enabled else []
            self._held.clear()
            self._pending.clear()
            self.enabled = False
        return [
            ReportBatch({}, tuple(paths[i : i + MAX_PATHS_PER_REPORT]))
            for i in range(0, len(paths), MAX_PATHS_PER_REPORT)
        ]
