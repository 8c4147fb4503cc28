"""``create_app(settings)``: the FastAPI application, no import-time singletons.

``secretsd serve`` runs this in one or more uvicorn worker processes through
:func:`create_app_from_env`, which reads the settings the parent resolved.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from secretsd import __version__
from secretsd.backends.vault import VaultAuth, VaultBackend
from secretsd.config import Settings, load_settings, settings_from_env
from secretsd.db.engine import make_engine, retire_engine
from secretsd.db.migrate import upgrade_schema
from secretsd.errors import ConfigError, SecretsdError
from secretsd.server.abandoned import AbandonedWriteGuard
from secretsd.server.docs import install_docs
from secretsd.server.edge import EdgeMiddleware
from secretsd.server.errors import install_error_handlers
from secretsd.server.fastpath import FastReadMiddleware
from secretsd.server.metrics import Metrics
from secretsd.server.middleware import RequestMiddleware
from secretsd.server.ratelimit import LoginGate
from secretsd.server.routes import (
    access,
    audit,
    auth,
    batch,
    consumers,
    health,
    kubernetes,
    metadata,
    policies,
    resolve,
    secrets,
    value_hashes,
)
from secretsd.server.state import AppState, ensure_admin_token

__all__ = ["create_app", "create_app_from_env", "make_backend"]

log = logging.getLogger(__name__)


def make_backend(settings: Settings, metrics: Metrics | None = None) -> VaultBackend:
    """The Vault backend for ``settings`` (which must name a Vault address)."""
    if settings.vault_addr is None:
        raise ConfigError(
            "no Vault address: set SECRETSD_VAULT_ADDR, or run `secretsd serve`, which starts "
            "the embedded OpenBao and hands its address to the workers"
        )
    auth = VaultAuth.from_settings_values(
        token=settings.vault_token.get_secret_value() if settings.vault_token else None,
        token_file=settings.vault_token_file,
        role_id=settings.vault_role_id,
        secret_id=settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None,
        secret_id_file=settings.vault_secret_id_file,
        approle_mount=settings.vault_approle_mount,
    )
    verify: bool | str = settings.vault_tls_verify
    if settings.vault_ca_cert is not None:
        verify = str(settings.vault_ca_cert)
    return VaultBackend(
        settings.vault_addr,
        auth,
        mount=settings.vault_mount,
        prefix=settings.vault_prefix,
        verify=verify,
        timeout=settings.vault_timeout,
        probe_interval=settings.vault_probe_interval,
        on_call=metrics.observe_vault if metrics is not None else None,
        fallback_addrs=settings.vault_fallback_addrs,
    )


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    backend = make_backend(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            await asyncio.to_thread(upgrade_schema, engine)
            try:
                await asyncio.to_thread(backend.login)
            except SecretsdError as error:
                # Start anyway: /readyz reports it, and calls retry the login.
                log.warning("cannot log in to Vault yet: %s", error.message)
            backend.start_renewal()
            state = AppState(settings, engine, backend, metrics)
            await asyncio.to_thread(ensure_admin_token, settings, state.tokens)
            await state.start()
            app.state.secretsd = state
            try:
                yield
            finally:
                await state.stop()
        finally:
            # A start that failed half-way leaves no pooled connection for the garbage
            # collector to close later (retiring twice is harmless).
            retire_engine(engine)

    app = FastAPI(
        title="secretsd",
        version=__version__,
        summary="Secrets brokered from Vault/OpenBao, with policies and an audit log.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    install_error_handlers(app)
    if settings.docs_enabled:
        install_docs(app)
    for module in (
        secrets,
        batch,
        metadata,
        resolve,
        auth,
        kubernetes,
        policies,
        audit,
        value_hashes,
        consumers,
        access,
        health,
    ):
        app.include_router(module.router)
    from secretsd.console import mount_console

    mount_console(app)  # the web console at /ui, calling this app's API in process
    # The fast path sits inside RequestMiddleware (added after it = around it), so request
    # ids, metrics and headers are the same whichever path answers.
    app.add_middleware(FastReadMiddleware, enabled=settings.fast_read)
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(LoginGate)
    # A write whose client already hung up is never applied.
    app.add_middleware(AbandonedWriteGuard, max_body_bytes=settings.max_body_bytes)
    # Outermost (added last): the real client address and the headers of every answer.
    app.add_middleware(EdgeMiddleware, trusted_proxies=settings.trusted_proxies)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: the parent's resolved settings, else load them."""
    from secretsd.logs import configure_logging
    from secretsd.server.metrics import reserve_multiprocess_files
    from secretsd.server.workers import die_with_parent

    die_with_parent()
    settings = settings_from_env() or load_settings()
    configure_logging(settings.log_level)
    reserve_multiprocess_files()
    app = create_app(settings)
    # Long-lived worker: move start-up objects out of the collector's way, and
    # collect the young generation less often (the hot path allocates briefly).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return app
