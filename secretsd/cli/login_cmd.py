"""``secretsd login`` / ``logout``: keep a token in a 0600 file for later commands.

The file is ``<user config dir>/secretsd/login.json`` (``~/.config/secretsd/``
on Linux). It is used only when no other credentials are configured
(``SECRETSD_TOKEN``, ``SECRETSD_TOKEN_FILE``, AppRole and Kubernetes variables
win), and only for the address it was made for. Secrets are never taken from
the command line: a token or secret id comes from a file or from stdin.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from secretsd.cli.client_cmds import AddrOption
from secretsd.errors import ConfigError, Forbidden, InvalidInput, NotFound

if TYPE_CHECKING:
    from secretsd.client import TokenInfo
    from secretsd.client.config import ClientSettings

__all__ = ["login", "logout"]


def _read_secret(prompt: str, file: Path | None, what: str) -> str:
    if file is not None:
        try:
            value = file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"cannot read {what} from {str(file)!r}: {error.strerror}") from None
    elif sys.stdin.isatty():
        value = typer.prompt(prompt, hide_input=True).strip()
    else:
        value = sys.stdin.readline().strip()
    if not value:
        raise InvalidInput(f"no {what} given")
    return value


def login(
    method: Annotated[
        str,
        typer.Option("--method", "-m", help="token, approle or kubernetes.", case_sensitive=False),
    ] = "token",
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="Read the token from this file (else stdin).", show_default=False
        ),
    ] = None,
    role_id: Annotated[
        str | None,
        typer.Option(
            "--role-id", help="AppRole role id (default: SECRETSD_ROLE_ID).", show_default=False
        ),
    ] = None,
    secret_id_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-id-file",
            help="AppRole secret id file (default: SECRETSD_SECRET_ID_FILE, else stdin).",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            "--role", help="Kubernetes role (default: SECRETSD_K8S_ROLE).", show_default=False
        ),
    ] = None,
    jwt_file: Annotated[
        Path | None,
        typer.Option(
            "--jwt-file",
            help="Service-account token (default: SECRETSD_K8S_TOKEN_FILE or the pod's).",
            show_default=False,
        ),
    ] = None,
    addr: AddrOption = None,
) -> None:
    """Log in and store the token (0600, user config dir) for later commands."""
    from secretsd.client import Client
    from secretsd.client.config import store_login

    method = method.lower()
    if method not in ("token", "approle", "kubernetes"):
        raise InvalidInput(f"--method is token, approle or kubernetes, not {method!r}")
    environ = os.environ
    # The SDK's one settings loader: the address (--addr > SECRETSD_ADDR > the last
    # login > default), SECRETSD_CACERT, SECRETSD_K8S_TOKEN_FILE, exactly as every
    # client reads them. Only the credentials are the ones this login is about.
    info: TokenInfo | None
    if method == "token":
        token = _read_secret("Token", token_file, "token")
        settings = _settings(addr, token)
        info = _verify(settings)
    else:
        settings = _settings(addr).without_credentials()
        with Client(settings=settings, auto_renew=False) as client:
            if method == "approle":
                role_id = role_id or environ.get("SECRETSD_ROLE_ID")
                if not role_id:
                    raise InvalidInput("AppRole login needs --role-id (or SECRETSD_ROLE_ID)")
                if secret_id_file is None and environ.get("SECRETSD_SECRET_ID_FILE"):
                    secret_id_file = Path(environ["SECRETSD_SECRET_ID_FILE"])
                secret_id = environ.get("SECRETSD_SECRET_ID") if secret_id_file is None else None
                secret_id = secret_id or _read_secret("Secret id", secret_id_file, "secret id")
                info = client.login_approle(role_id, secret_id)
            else:
                role = role or environ.get("SECRETSD_K8S_ROLE")
                if not role:
                    raise InvalidInput("Kubernetes login needs --role (or SECRETSD_K8S_ROLE)")
                jwt = _read_secret(
                    "JWT", jwt_file or settings.k8s_token_file, "service-account token"
                )
                info = client.login_kubernetes(role, jwt)
        token = info.token or ""
    path = store_login(settings.addr, token)
    detail = ""
    if info is not None:
        policies = ", ".join(info.policies) or "none"
        detail = f" (policies: {policies}; expires: {info.expires_at or 'never'})"
    typer.echo(f"Logged in to {settings.addr}{detail}.", err=True)
    typer.echo(
        f"Token stored in {path} (mode 0600); commands use it when SECRETSD_TOKEN, "
        "SECRETSD_TOKEN_FILE and the login variables are unset.",
        err=True,
    )


def _settings(addr: str | None, token: str | None = None) -> ClientSettings:
    from secretsd.client import load_client_settings

    try:
        return load_client_settings(addr, token)
    except ConfigError:
        # A corrupt login file must not stop the login that replaces it (a bad
        # SECRETSD_ADDR raises again).
        return load_client_settings(addr, token, use_login_file=False)


def _verify(settings: ClientSettings) -> TokenInfo | None:
    """Check the token with the service (401 raises Unauthenticated)."""
    from secretsd.client import Client

    with Client(settings=settings, auto_renew=False) as client:
        try:
            return client.token_info()
        except NotFound:
            pass
        # A service without token introspection: any answer but 401 will do.
        with contextlib.suppress(Forbidden, NotFound):
            client.list()
    return None


def logout() -> None:
    """Forget the stored token."""
    from secretsd.client.config import forget_login, login_file

    if forget_login():
        typer.echo(f"Removed {login_file()}.", err=True)
    else:
        typer.echo("Not logged in.", err=True)
