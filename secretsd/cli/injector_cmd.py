"""``secretsd injector``: run the mutating admission webhook (TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["injector"]


def injector(
    tls_cert: Annotated[Path, typer.Option("--tls-cert", help="Serving certificate (PEM).")],
    tls_key: Annotated[Path, typer.Option("--tls-key", help="Its private key (PEM).")],
    image: Annotated[
        str, typer.Option("--image", envvar="SECRETSD_AGENT_IMAGE", help="The agent's image.")
    ],
    addr: Annotated[
        str,
        typer.Option(
            "--secretsd-addr", envvar="SECRETSD_ADDR", help="secretsd's URL as pods reach it."
        ),
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="host:port to serve on.")
    ] = "0.0.0.0:8443",
    ca_configmap: Annotated[
        str | None,
        typer.Option(
            "--ca-configmap", help="ConfigMap (key ca.crt) the agent trusts for secretsd."
        ),
    ] = None,
) -> None:
    """Add the secretsd agent to pods annotated secretsd.io/inject: "true"."""
    import uvicorn

    from secretsd.agent.injector import InjectorSettings
    from secretsd.agent.webhook import create_injector_app
    from secretsd.errors import ConfigError

    for path in (tls_cert, tls_key):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; the webhook is served over TLS only")
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen {listen!r} is not host:port")
    settings = InjectorSettings(image=image, addr=addr, ca_configmap=ca_configmap)
    uvicorn.run(
        create_injector_app(settings),
        host=host or "0.0.0.0",  # noqa: S104 - a webhook serves the API server
        port=int(port),
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        log_level="info",
        access_log=False,
    )
