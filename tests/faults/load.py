"""A bounded write/read load over several replicas that keeps the books.

Every write carries a fresh random value. A write is *acknowledged* when a replica
answered 200 with a version; afterwards each acknowledged (path, version, value) must
read back exactly, from any replica: otherwise it is *lost*. Failed or timed-out
requests are counted by their status (``503``, ``timeout``, ``connect``...): they
were never promised, so they are not losses (a timed-out write may still have been
applied; that is issue 8 item 7's "outcome unknown").
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

__all__ = ["Ack", "Load"]


@dataclass(frozen=True)
class Ack:
    path: str
    version: int
    value: str


@dataclass
class Load:
    """``threads`` workers, each alternating writes and reads over ``urls`` round-robin."""

    urls: list[str]
    token: str
    threads: int = 4
    pause: float = 0.05
    max_requests: int = 600
    timeout: float = 8.0
    sent: int = 0
    acked: list[Ack] = field(default_factory=list)
    reads_ok: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(self.timeout + 5)

    def _take(self) -> int | None:
        with self._lock:
            if self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent

    def _record(self, outcome: str, elapsed: float) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            self.latencies.append(elapsed)

    def _run(self, index: int) -> None:
        clients = [
            httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
            for url in self.urls
        ]
        try:
            turn = 0
            last = f"load/w{index}/none"
            while not self._stop.is_set():
                number = self._take()
                if number is None:
                    return
                client = clients[(index + turn) % len(clients)]
                turn += 1
                if number % 2:
                    # A fresh path per write: KV v2 keeps only the last 10 versions of a path.
                    last = f"load/w{index}/n{number}"
                    self._write(client, last)
                else:
                    self._read(client, last)
                self._stop.wait(self.pause)
        finally:
            for client in clients:
                client.close()

    def _write(self, client: httpx.Client, path: str) -> None:
        value = "v-" + secrets.token_hex(12)
        started = time.perf_counter()
        try:
            answer = client.put(f"/v1/secrets/{path}", json={"data": {"v": value}})
        except httpx.TimeoutException:
            self._record("write timeout", time.perf_counter() - started)
            return
        except httpx.HTTPError as error:
            self._record(f"write {type(error).__name__}", time.perf_counter() - started)
            return
        self._record(f"write {answer.status_code}", time.perf_counter() - started)
        if answer.status_code == 200:
            with self._lock:
                self.acked.append(Ack(path, int(answer.json()["version"]), value))

    def _read(self, client: httpx.Client, path: str) -> None:
        started = time.perf_counter()
        try:
            answer = client.get(f"/v1/secrets/{path}")
        except httpx.TimeoutException:
            self._record("read timeout", time.perf_counter() - started)
            return
        except httpx.HTTPError as error:
            self._record(f"read {type(error).__name__}", time.perf_counter() - started)
            return
        self._record(f"read {answer.status_code}", time.perf_counter() - started)

    def lost(self, url: str) -> list[Ack]:
        """Acknowledged writes that do not read back (by exact version) through ``url``."""
        missing = []
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        ) as client:
            for ack in self.acked:
                answer = client.get(f"/v1/secrets/{ack.path}", params={"version": ack.version})
                if answer.status_code != 200 or answer.json()["data"].get("v") != ack.value:
                    missing.append(ack)
        return missing

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.latencies)
        p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
        return {
            "sent": self.sent,
            "acknowledged_writes": len(self.acked),
            "outcomes": dict(sorted(self.outcomes.items())),
            "p99_s": round(p99, 3),
        }
