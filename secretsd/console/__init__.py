"""The web console at ``/ui`` (server-rendered pages, htmx, no front-end build)."""

from __future__ import annotations

from secretsd.console.app import create_console, mount_console

__all__ = ["create_console", "mount_console"]
