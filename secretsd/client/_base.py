"""What ``Client`` and ``AsyncClient`` share besides the core: construction and repr."""

from __future__ import annotations

from secretsd.client._core import ClientCore
from secretsd.client._held import consumer_name
from secretsd.client._retry import Retry
from secretsd.client.config import ClientSettings, load_client_settings

__all__ = ["ClientBase"]


class ClientBase:
    """Configuration common to both clients (see ``Client`` for the arguments)."""

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        *,
        settings: ClientSettings | None = None,
        timeout: float = 10.0,
        cache_ttl: float = 1.0,
        retry: Retry | None = None,
        auto_renew: bool = True,
        watch_wait: float = 30.0,
        report_versions: bool | None = None,
        consumer: str | None = None,
    ) -> None:
        if settings is None:
            settings = load_client_settings(addr, token)
        elif addr is not None or token is not None:
            raise TypeError("pass either settings or addr/token, not both")
        if watch_wait <= 0 or watch_wait > 60:
            raise ValueError("watch_wait is in seconds, above 0 and at most 60 (the server's cap)")
        self._core = ClientCore(
            settings,
            timeout=timeout,
            cache_ttl=cache_ttl,
            retry=retry or Retry(),
            auto_renew=auto_renew,
            watch_wait=watch_wait,
        )
        #: Whether this client tells secretsd which versions it holds (see ``_held``).
        self.reports_versions = (
            settings.report_versions if report_versions is None else report_versions
        )
        if not self.reports_versions:
            self._core.held.disable()
        self._consumer = consumer

    @property
    def consumer(self) -> str:
        """This process's name in ``GET /v1/consumers/<path>`` (computed per report, so a
        forked worker reports under its own pid)."""
        return self._consumer or consumer_name()

    @property
    def addr(self) -> str:
        return self._core.settings.addr

    @property
    def settings(self) -> ClientSettings:
        return self._core.settings

    def invalidate(self, path: str | None = None) -> None:
        """Forget cached secrets (one path, or all)."""
        if path is None:
            self._core.cache.clear()
        else:
            self._core.cache.invalidate(path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(addr={self.addr!r}, "
            f"credentials={self._core.auth.kind!r}, token=<hidden>)"
        )
