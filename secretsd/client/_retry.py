"""When to try again: connection errors and 503, with capped exponential backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

from secretsd.client._effects import HttpResponse, TransportFailure

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy: ``attempts`` tries in all, sleeping ``backoff * 2**n`` (capped, jittered).

    The default waits about 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 s, so a service
    restart of a few seconds is ridden out; then the typed error is raised.
    """

    attempts: int = 7
    backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")

    def delay(self, failures: int) -> float:
        """Seconds to sleep after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_backoff, self.backoff * (2.0 ** max(0, failures - 1)))
        return base * (1 + self.jitter * random.random())  # noqa: S311 - jitter, not crypto

    def should_retry(
        self, idempotent: bool, outcome: HttpResponse | TransportFailure, failures: int
    ) -> bool:
        """Whether a call that ended in ``outcome`` may be tried again.

        Reads (and deletes, which are idempotent) are retried on connection
        errors and on 503 (Vault, database or audit log unavailable). A write
        is retried only when its request surely never reached the service
        (connection refused): after a 503 or a lost answer it may have landed
        (the service audits a write after it happens), and repeating it behind
        the caller's back could add a version or fail a check-and-set.
        """
        if failures >= self.attempts:
            return False
        if isinstance(outcome, TransportFailure):
            return not outcome.permanent and (not outcome.sent or idempotent)
        return outcome.status == 503 and idempotent
