"""Drift between the sources and secretsd, for the weeks when both still exist.

Reads the sources, maps them as a plan would and compares every value with
its target through batch resolves. A value is ``in_sync``, ``missing`` (no
such secret or key in secretsd) or ``differs``; unreadable sources are
``error``. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretsd.migrations.mapping import Mapper
from secretsd.migrations.model import Imported, Source
from secretsd.migrations.plan import read_targets

from secretsd.errors import SecretsdError

if TYPE_CHECKING:
    from secretsd.client import Client

__all__ = ["Drift", "verify"]


@dataclass(frozen=True, slots=True)
class Drift:
    source: Source
    target: str
    state: str  # in_sync | missing | differs | error
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "state": self.state,
            "target": self.target,
            "source": self.source.to_json(),
        }
        if self.message:
            item["message"] = self.message
        return item


def verify(imported: Iterable[Imported], mapper: Mapper, client: Client) -> list[Drift]:
    mapped: list[tuple[Imported, str, str]] = []
    results: list[Drift] = []
    for item in imported:
        if item.problem is not None:
            results.append(Drift(item.source, "", "error", str(item.problem)))
            continue
        try:
            path, key = mapper.target(item)
        except SecretsdError as error:
            results.append(Drift(item.source, "", "error", error.message))
            continue
        mapped.append((item, path, key))
    states = read_targets(client, {path for _, path, _ in mapped})
    for item, path, key in mapped:
        target = f"secretsd://{path}#{key}"
        state = states[path]
        if state.version < 0:
            results.append(Drift(item.source, target, "error", state.problem))
        elif key not in state.data:
            results.append(Drift(item.source, target, "missing"))
        elif state.data[key] != item.value:
            results.append(Drift(item.source, target, "differs"))
        else:
            results.append(Drift(item.source, target, "in_sync"))
    results.sort(key=lambda d: d.source.sort_key())
    return results
