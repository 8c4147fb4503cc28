"""Consumer versions: who holds which version of a secret, as they last reported it.

Agents report after every render and SDK clients after reading a new
version, both also as a heartbeat (``PUT /v1/consumers``); a closing SDK
client releases its paths;
``GET /v1/consumers/<path>`` lists the reports for one path, each marked
``live`` when it was seen within ``LIVE_SECONDS``. ``secretsd rotate --wait``
writes a version and polls this until every live consumer holds it.
A consumer that stops reporting drops out of "live" by itself; rows older
than ``FORGET_SECONDS`` are removed on the next report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from secretsd.db.engine import database_errors
from secretsd.db.models import ConsumerVersion
from secretsd.errors import Conflict

__all__ = ["HEARTBEAT_SECONDS", "LIVE_SECONDS", "ConsumerStore", "HeldVersion"]

#: The agent's heartbeat (secretsd.agent.runner.HEARTBEAT_SECONDS); live = three of them.
HEARTBEAT_SECONDS = 60.0
LIVE_SECONDS = 3 * HEARTBEAT_SECONDS
FORGET_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class HeldVersion:
    consumer: str
    path: str
    version: int
    kind: str
    identity: str
    display_name: str
    last_seen: float

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "kind": self.kind,
            "identity": self.display_name or self.identity,
            "version": self.version,
            "last_seen": self.last_seen,
            "live": now - self.last_seen <= LIVE_SECONDS,
        }


class ConsumerStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def report(
        self,
        *,
        consumer: str,
        kind: str,
        identity: str,
        display_name: str,
        versions: Mapping[str, int],
        released: Sequence[str] = (),
    ) -> None:
        now = time.time()
        with database_errors(self._engine), self._engine.begin() as connection:
            self._check_owner(connection, consumer, display_name, [*versions, *released], now)
            if released:
                connection.execute(
                    delete(ConsumerVersion).where(
                        ConsumerVersion.consumer == consumer,
                        ConsumerVersion.path.in_(sorted(set(released))),
                    )
                )
            for path, version in sorted(versions.items()):
                values = {
                    "version": version,
                    "kind": kind,
                    "identity": identity,
                    "display_name": display_name,
                    "last_seen": now,
                }
                updated = connection.execute(
                    update(ConsumerVersion)
                    .where(ConsumerVersion.consumer == consumer, ConsumerVersion.path == path)
                    .values(**values)
                ).rowcount
                if not updated:
                    connection.execute(
                        insert(ConsumerVersion), [{"consumer": consumer, "path": path, **values}]
                    )
            connection.execute(
                delete(ConsumerVersion).where(ConsumerVersion.last_seen < now - FORGET_SECONDS)
            )

    @staticmethod
    def _check_owner(
        connection: Connection,
        consumer: str,
        display_name: str,
        paths: Sequence[str],
        now: float,
    ) -> None:
        """A consumer name belongs to the identity that reports it (its login's display
        name: ``approle-<role>``, ``k8s-<namespace>-<account>``, which survives a re-login);
        another identity that can read the path must not overwrite or withdraw its rows,
        or ``rotate --wait`` could be made to stop waiting for a laggard."""
        if not paths:
            return
        other = connection.execute(
            select(ConsumerVersion.path)
            .where(
                ConsumerVersion.consumer == consumer,
                ConsumerVersion.path.in_(sorted(set(paths))),
                ConsumerVersion.display_name != display_name,
                ConsumerVersion.last_seen >= now - FORGET_SECONDS,
            )
            .limit(1)
        ).first()
        if other is not None:
            raise Conflict(
                f"consumer name {consumer!r} already reports {other.path!r} for another "
                "identity; give this process its own consumer name"
            )

    def holders(self, path: str) -> list[HeldVersion]:
        with database_errors(self._engine), self._engine.connect() as connection:
            rows = connection.execute(
                select(ConsumerVersion)
                .where(ConsumerVersion.path == path)
                .order_by(ConsumerVersion.consumer)
            ).all()
        return [
            HeldVersion(
                row.consumer,
                row.path,
                row.version,
                row.kind,
                row.identity,
                row.display_name,
                row.last_seen,
            )
            for row in rows
        ]
