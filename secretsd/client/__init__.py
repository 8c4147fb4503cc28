"""The Python SDK: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Both are thin shells around one sans-IO core (``_core``): the core builds
requests, maps answers to our own types and to the one error hierarchy,
decides retries, logins and renewals and keeps the cache; each shell only
sends what it yields, with httpx.

    from secretsd import Client

    with Client() as client:                        # SECRETSD_ADDR, SECRETSD_TOKEN...
        password = client.get("secretsd://apps/web/db#password")
        settings = client.get_map("apps/web/db")
        client.watch("apps/web/db", lambda secret: print("now version", secret.version))

Errors are the classes of ``secretsd.errors`` (``secretsd.NotFound``,
``secretsd.Forbidden``, ``secretsd.Unauthenticated``, ``secretsd.Unavailable``,
``secretsd.InvalidReference``...), whether raised here or by the service.
"""

from __future__ import annotations

from secretsd.backends.base import SecretMetadata, SecretVersion, VersionInfo
from secretsd.client._async import AsyncClient, AsyncWatch, Changes
from secretsd.client._held import consumer_name
from secretsd.client._retry import Retry
from secretsd.client._sync import Client, Watch
from secretsd.client._types import Resolved, SecretWrite, TokenInfo, Written
from secretsd.client.config import ClientSettings, load_client_settings

__all__ = [
    "AsyncClient",
    "AsyncWatch",
    "Changes",
    "Client",
    "ClientSettings",
    "Resolved",
    "Retry",
    "SecretMetadata",
    "SecretVersion",
    "SecretWrite",
    "TokenInfo",
    "VersionInfo",
    "Watch",
    "Written",
    "consumer_name",
    "load_client_settings",
]
