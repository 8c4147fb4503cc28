"""``secretsd serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from secretsd.cli.options import ConfigOption, DataDirOption, settings_from_flags
from secretsd.errors import ConfigError

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
    try:
        from secretsd.server.serve import serve as run_server
    except ImportError as error:
        raise ConfigError(
            f"the server needs the 'server' extra ({error.name} is missing): "
            "pip install 'secretsd[server]'"
        ) from None
    from secretsd.logs import configure_logging

    configure_logging(settings.log_level)
    run_server(settings)
