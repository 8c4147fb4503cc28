"""Sending a blocking ``Client``'s version reports from a background thread.

The thread starts with the first version worth reporting, sleeps until
``HeldVersions`` says a report is due, and sends it with the client's own
connection pool. Nothing it does reaches the reading thread: a failure is
logged at debug level and retried later (``_held``). ``close()`` stops it and
tells the service, in one quick try, that this process lets go of its paths.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from secretsd.client._held import HeldVersions, ReportBatch
from secretsd.errors import NotFound, SecretsdError

__all__ = ["ReportThread", "send_batches", "settle"]

log = logging.getLogger("secretsd.client")

Send = Callable[[ReportBatch], None]


def settle(held: HeldVersions, batch: ReportBatch, error: Exception | None) -> bool:
    """Book one report's outcome; False when reporting is now off for this client."""
    if error is None:
        held.sent()
    elif isinstance(error, NotFound):
        log.info("secretsd does not take consumer reports (an older version?); not reporting")
        held.disable()
        return False
    else:
        detail = error.message if isinstance(error, SecretsdError) else repr(error)
        log.debug("reporting held versions failed (will retry): %s", detail)
        held.failed(batch)
    return True


def send_batches(held: HeldVersions, batches: list[ReportBatch], send: Send) -> None:
    """Send each batch; never raises (reporting must not break the application)."""
    for batch in batches:
        try:
            send(batch)
        except Exception as error:
            if not settle(held, batch, error):
                return
        else:
            settle(held, batch, None)


class ReportThread:
    def __init__(self, held: HeldVersions, send: weakref.WeakMethod[Send]) -> None:
        # The thread holds its client only weakly: a client dropped without close() is
        # collected, and its thread ends (``abandon``), instead of reporting forever.
        self._held = held
        self._send = send
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False

    def wake(self) -> None:
        """A version is news: start the thread if needed and let it look (cheap, never blocks
        on the network)."""
        with self._wake:
            if self._stopping:
                return
            if self._pid != os.getpid():  # forked: the parent's thread is not ours
                self._thread, self._pid = None, os.getpid()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="secretsd-report", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _main(self) -> None:
        while True:
            with self._wake:
                while not self._stopping:
                    delay = self._held.wait_time()
                    if delay <= 0:
                        break
                    self._wake.wait(min(delay, 3600.0))
                if self._stopping:
                    return
            send = self._send()
            if send is None:  # the client is gone
                return
            send_batches(self._held, self._held.take(), send)
            del send  # no strong reference to the client while asleep

    def abandon(self) -> None:
        """The client was garbage-collected without close(): end the thread, send nothing."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def close(self, release: Send) -> None:
        """Stop reporting; if anything was reported, say (with ``release``) that this
        process holds it no more."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is None:
            return
        thread.join(2.0)
        if thread.is_alive():  # stuck sending to an unresponsive service: do not wait more
            self._held.release()
            return
        for batch in self._held.release():
            try:
                release(batch)
            except Exception as error:
                log.debug("telling secretsd this process let go failed: %r", error)
                return
