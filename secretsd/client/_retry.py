"""When to try again: connection errors and 503 with capped exponential backoff; refusals
carrying ``Retry-After`` (429, or 503 with one) after the service's own delay, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass

from secretsd.client._effects import HttpRequest, HttpResponse, TransportFailure

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy: ``attempts`` tries in all, sleeping ``backoff * 2**n`` (capped, jittered).

    The default waits about 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 s, so a service
    restart of a few seconds is ridden out; then the typed error is raised.

    A refusal that says when to come back (429 ``rate_limited``, or a 503 with
    ``Retry-After``) is retried after the service's delay instead, at most
    ``refusals`` times and ``max_retry_after`` seconds of waiting in all, and
    only for a call that is safe to send again (see :meth:`after_refusal`);
    then ``RateLimited`` (or the 503's error) is raised, with the delay.
    """

    attempts: int = 7
    backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 0.1
    refusals: int = 3
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")
        if self.refusals < 0 or self.max_retry_after < 0:
            raise ValueError("Retry.refusals and Retry.max_retry_after must not be negative")

    def after_refusal(
        self, request: HttpRequest, status: int, hint: float, refused: int, waited: float
    ) -> bool:
        """Whether to wait ``hint`` seconds and send ``request`` again after a refusal.

        ``refused`` refusals were retried already, after ``waited`` seconds in
        all. Reads (GET, HEAD) and check-and-set writes may be sent again; a
        login only after a 429, which the service answers before doing any
        work (no secret-id use is spent); any other write never, since a 503
        may come after it landed.
        """
        if refused >= self.refusals or waited + hint > self.max_retry_after:
            return False
        return request.may_replay or (status == 429 and request.login)

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
