"""``secretsd serve`` (one per embedded data dir: ``secretsd.server.instance_lock``)."""

from __future__ import annotations

from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags

__all__ = ["serve"]


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (SECRETSD_HOST).", show_default=False)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on (SECRETSD_PORT, default 8700).", show_default=False),
    ] = None,
    data_dir: DataDirOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (SECRETSD_WORKERS, default: CPUs, max 4).", show_default=False
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="critical, error, warning, info or debug.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the secretsd service. Without a Vault address it runs an embedded OpenBao."""
    settings = settings_from_flags(
        config, host=host, port=port, data_dir=data_dir, workers=workers, log_level=log_level
    )
    from secretsd.logs import configure_logging
    from secretsd.server.serve import serve as run_server  # no extra: one-line hint (boundary)

    configure_logging(settings.log_level)
    if not settings.embedded:  # an external Vault: replicas may share a data dir
        run_server(settings)
        return
    from secretsd.server.instance_lock import hold_data_dir

    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    addr = f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"
    with hold_data_dir(settings.data_dir, addr):  # one serve per embedded OpenBao
        run_server(settings)
