"""Telling secretsd which versions this agent holds (``PUT /v1/consumers``).

``secretsd rotate <path> --wait`` and ``secretsd consumers <path>`` read
these reports. A report that fails is logged and retried with the next
render; it never stops files from being rendered.
"""

from __future__ import annotations

from collections.abc import Mapping

from secretsd.client import Client
from secretsd.client import consumer_name as _process_name

__all__ = ["Reporter", "consumer_name"]


def consumer_name() -> str:
    """The pod (``POD_NAME``/``POD_NAMESPACE``, set by the injector) or the host name."""
    return _process_name(process=False)


class Reporter:
    def __init__(self, client: Client, name: str | None = None) -> None:
        self._client = client
        self.name = name or consumer_name()
        self._last: dict[str, int] = {}

    def report(self, held: Mapping[str, int]) -> None:
        if not held:
            return
        self._client.request(
            "PUT",
            "/v1/consumers",
            json={"consumer": self.name, "kind": "agent", "versions": dict(held)},
        )
        self._last = dict(held)
