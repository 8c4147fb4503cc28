"""Fire-and-forget work of one worker, kept so that shutdown can wait for it.

A change (a policy written, a role deleted, Vault seen down) is acted on in the
background so the request that noticed it is not held up. Such a task usually runs a
database call in a thread. Cancelling it at shutdown would not stop that thread: the
connection it uses would come back after the engine was disposed. So shutdown lets these
short tasks finish instead, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Tasks started and not awaited by their starter; strong references until done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(self, timeout: float = 10.0) -> None:
        """Wait for every task (those they start too); cancel what is left after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.warning("%d background task(s) still running at shutdown", len(self._tasks))
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                return
            await asyncio.wait(set(self._tasks), timeout=remaining)
