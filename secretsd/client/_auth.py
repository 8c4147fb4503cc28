"""Which token to send, when to log in, when to renew: decisions only, no I/O.

- A static token (argument, ``SECRETSD_TOKEN``, login file) is sent as is.
  With auto-renewal on, the client asks the service once what the token's
  lifetime is (``GET /v1/auth/tokens/self``) and renews a renewable token
  when a third of its lifetime is left.
- ``SECRETSD_TOKEN_FILE`` is read when first needed and read again when the
  service rejects the token (an agent may have rotated the file).
- AppRole and Kubernetes credentials log in when first needed, renew like
  static tokens (the login answer says ``renewable`` and ``ttl``), and log in
  again when the token is rejected or has expired.
"""

from __future__ import annotations

import time
from typing import Any

from secretsd.client._effects import HttpRequest
from secretsd.client._types import TokenInfo
from secretsd.client.config import NO_CREDENTIALS_HINT, ClientSettings
from secretsd.errors import Unauthenticated

__all__ = ["AuthState", "token_info"]

_RENEW_RETRY_AFTER = 10.0
_MIN_RENEW_MARGIN = 5.0


def token_info(body: Any, token: str | None = None) -> TokenInfo:
    ttl = body.get("ttl")
    return TokenInfo(
        accessor=str(body.get("accessor", "")),
        policies=tuple(str(p) for p in body.get("policies") or ()),
        expires_at=body.get("expires_at"),
        ttl=int(ttl) if isinstance(ttl, int | float) else None,
        renewable=bool(body.get("renewable", False)),
        display_name=str(body.get("display_name", "")),
        method=str(body.get("method", "")),
        token=token,
    )


class AuthState:
    def __init__(self, settings: ClientSettings, *, auto_renew: bool) -> None:
        self.settings = settings
        self.kind = settings.credential_kind
        self._token: str | None = settings.token
        self._auto_renew = auto_renew
        # Lifetime, in time.monotonic() terms; None = unknown or no expiry.
        self._expires: float | None = None
        self._period: float | None = None
        self.renewable = False
        self._looked_up = not auto_renew or self.kind in ("approle", "kubernetes", "none")
        self._renew_failed_at: float | None = None

    def __repr__(self) -> str:
        return f"AuthState(kind={self.kind!r}, token={'<hidden>' if self._token else None})"

    @property
    def can_login(self) -> bool:
        return self.kind in ("approle", "kubernetes")

    # -- what to send ---------------------------------------------------------

    def header(self) -> dict[str, str]:
        token = self._token
        if token is None and self.kind == "token_file":
            token = self._token = self.settings.read_token_file()
        if token is None:
            raise Unauthenticated(f"no credentials: {NO_CREDENTIALS_HINT}")
        return {"Authorization": f"Bearer {token}"}

    def use_token(self, token: str) -> None:
        """Adopt a token obtained by an explicit login call."""
        self._token = token
        self.kind = "token"
        self._looked_up = True

    # -- login ------------------------------------------------------------------

    def needs_login(self) -> bool:
        if not self.can_login:
            return False
        if self._token is None:
            return True
        return self._expires is not None and time.monotonic() >= self._expires

    def login_request(self) -> HttpRequest:
        if self.kind == "approle":
            body = {"role_id": self.settings.role_id, "secret_id": self.settings.read_secret_id()}
            return HttpRequest(
                "POST", "/v1/auth/approle/login", json=body, idempotent=False, login=True
            )
        body = {"role": self.settings.k8s_role, "jwt": self.settings.read_k8s_jwt()}
        return HttpRequest(
            "POST", "/v1/auth/kubernetes/login", json=body, idempotent=False, login=True
        )

    def apply_login(self, info: TokenInfo) -> None:
        if not info.token:
            raise Unauthenticated("the login answer carried no token")
        self._token = info.token
        self.apply_lifetime(info)

    # -- lifetime and renewal ------------------------------------------------------

    def needs_lookup(self) -> bool:
        return not self._looked_up

    def lookup_started(self) -> None:
        self._looked_up = True

    def apply_lifetime(self, info: TokenInfo) -> None:
        self.renewable = info.renewable
        self._renew_failed_at = None
        if info.ttl is None:  # a token without expiry
            self._expires = self._period = None
            return
        # ttl counts whole seconds left: 0 means "about to expire", not "never".
        self._period = float(max(info.ttl, 1))
        self._expires = time.monotonic() + max(info.ttl, 0)

    def renew_due(self) -> bool:
        if not (self._auto_renew and self.renewable) or self._expires is None:
            return False
        now = time.monotonic()
        if self._renew_failed_at is not None and now - self._renew_failed_at < _RENEW_RETRY_AFTER:
            return False
        margin = max(_MIN_RENEW_MARGIN, (self._period or 0.0) / 3)
        return self._expires - now <= margin

    def renew_failed(self) -> None:
        self._renew_failed_at = time.monotonic()

    # -- rejection -------------------------------------------------------------------

    def on_unauthenticated(self) -> bool:
        """The service rejected our token: True if fresh credentials are worth a retry."""
        if self.can_login:
            self._token = None
            self._expires = None
            return True
        if self.kind == "token_file":
            old = self._token
            self._token = self.settings.read_token_file()
            return self._token != old
        return False
