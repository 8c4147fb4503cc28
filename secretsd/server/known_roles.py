"""Which login roles exist, in each worker's memory, for the login gate (ratelimit.py).

Failed logins naming a role that does not exist share one budget per client
address. To refuse a flood of made-up role ids as cheaply as one against a
real role (before the framework, without a database read), the gate needs to
know which roles exist. This index holds them: AppRole ``role_id``s and
Kubernetes role names, loaded at start and again on every ``role`` change of
the change feed (this worker's at once, other workers' and replicas' within
the feed's bound).

A stale index errs safely: a role created a moment ago and not yet indexed is
only refused at the gate if its client has used up its made-up-role budget
(the route then decides with the database), and a deleted role still indexed
goes on to the route, which finds it gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from secretsd.errors import SecretsdError
from secretsd.server.background import BackgroundTasks

__all__ = ["KnownRoles"]

log = logging.getLogger(__name__)


class KnownRoles:
    def __init__(self, load: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._load = load
        self._roles: frozenset[tuple[str, str]] | None = None
        self._changes = 0
        self._loaded = 0
        self.background = BackgroundTasks()

    def may_exist(self, method: str, role: str) -> bool:
        """False only when the index is loaded and current and does not hold the role."""
        if self._roles is None or self._loaded < self._changes:
            return True
        return (method, role) in self._roles

    def changed(self) -> None:
        """A role was written or deleted somewhere: load the index again, in the background."""
        self._changes += 1
        self.background.spawn(self.reload())

    async def reload(self) -> None:
        wanted = self._changes
        try:
            roles = frozenset(await asyncio.to_thread(self._load))
        except SecretsdError as error:
            log.warning("loading the login roles failed, keeping the last ones: %s", error.message)
            return
        if wanted >= self._loaded:
            self._roles = roles
            self._loaded = wanted
