"""The one way secretsd talks to Vault / OpenBao: login, renewal, errors, breaker.

hvac builds every request (it knows Vault's API); its requests session sends
the synchronous ones, and one aiohttp session per event loop sends the hot
path's reads (hvac on a thread costs ~4x the CPU per call). Both halves go
through this module, so there is exactly one of each:

- **error table** (:meth:`VaultTransport.answer_error` for HTTP answers,
  :meth:`VaultTransport.network_error` for calls that got none): Vault's
  failures become secretsd's error classes, with the same message whichever
  half saw them;
- **re-login**: a 403 saying secretsd's own token is invalid logs in again,
  once, under one lock (callers that raced re-use the fresh token);
- **renewal**: a background thread renews the token at two thirds of its TTL;
- **circuit breaker**: once Vault fails to answer (unreachable, timed out,
  sealed), every call fails at once instead of waiting out its timeout, and
  a background probe of ``sys/health`` every ``probe_interval`` seconds closes
  the breaker as soon as Vault answers again.

A write whose answer never came (read timeout, connection dropped after the
request was sent) is reported as :class:`~secretsd.errors.OutcomeUnknown`, not
as "not written": Vault may apply it when it resumes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import hvac
import hvac.adapters
import orjson
import requests

from secretsd.backends.credentials import VaultAuth, VaultHealth
from secretsd.errors import (
    CasMismatch,
    InvalidInput,
    OutcomeUnknown,
    SecretsdError,
    VaultUnavailable,
)

__all__ = ["VaultAnswered", "VaultAuth", "VaultHealth", "VaultMissing", "VaultTransport"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: HTTP answers that mean "Vault is not serving" (sealed, standby without forwarding, proxy).
_DOWN_STATUSES = frozenset({502, 503, 504})
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class VaultAnswered(Exception):
    """A non-2xx HTTP answer, raised by the hvac adapter for the error table to map."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, dict) else {}


class VaultMissing(Exception):
    """Vault answered 404; the body tells a deleted or destroyed version from an absent one."""

    def __init__(self, body: Any) -> None:
        super().__init__("not found")
        self.body = body if isinstance(body, dict) else {}


class _NeverSent(Exception):
    """A call whose connection to the current node was never made: another node may take it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _TokenInvalid(Exception):
    """secretsd's own Vault token is expired or revoked: log in again, once."""


class _Adapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's JSON adapter, raising the raw answer instead of hvac's exception classes."""

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        raise VaultAnswered(response.status_code, body)


class VaultTransport:
    """One Vault connection: hvac for requests, aiohttp for hot reads, one error table."""

    def __init__(
        self,
        addr: str,
        auth: VaultAuth,
        *,
        verify: bool | str = True,
        timeout: float = 5.0,
        on_call: Callable[[str, float], None] | None = None,
        probe_interval: float = 1.0,
        breaker: bool = True,
        fallback_addrs: Sequence[str] = (),
    ) -> None:
        self.addr = addr.rstrip("/")
        #: This node, then the other nodes of the same cluster (``vault_fallback_addrs``).
        self._addrs = [self.addr, *(a.rstrip("/") for a in fallback_addrs if a != self.addr)]
        self._breaker = breaker
        self.timeout = timeout
        self.probe_interval = probe_interval
        self._auth = auth
        self._verify = verify
        self._on_call = on_call
        self.client = hvac.Client(url=self.addr, verify=verify, timeout=timeout, adapter=_Adapter)
        self._login_lock = threading.Lock()
        self._logged_in = False
        self._token_ttl = 0.0
        self._stop = threading.Event()
        self._renewal_thread: threading.Thread | None = None
        self._session: Any = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        # Circuit breaker: the reason Vault is known down (None: closed) and since when.
        self._down: str | None = None
        self._down_since = 0.0
        self._breaker_lock = threading.Lock()
        self._probe_thread: threading.Thread | None = None
        #: Called (from any thread) when this transport finds Vault down by itself.
        self.on_down: Callable[[], None] | None = None

    # -- the error table ----------------------------------------------------

    def answer_error(self, status: int, body: Any, doing: str, path: str) -> Exception:
        """An HTTP error answer as secretsd's error (or an internal signal)."""
        errors = body.get("errors") if isinstance(body, dict) else None
        text = " ".join(str(e) for e in errors or [])
        if status == 404:
            return VaultMissing(body)
        if status in (401, 403) and (
            "invalid token" in text or ("token" in text and "expired" in text)
        ):
            return _TokenInvalid()
        if status == 400:
            if "check-and-set" in text:
                return CasMismatch(
                    f"check-and-set failed for {path!r}: the given cas version is not the "
                    "current one; read the secret again and retry with its version "
                    "(cas=0 means 'create only')"
                )
            return InvalidInput(f"Vault rejected the request for {path!r}: {text}")
        if status in (401, 403):
            return VaultUnavailable(
                f"Vault denied secretsd's own token {doing} {path!r} (permission denied); "
                "grant secretsd's Vault policy create/read/update/patch/delete/list on its "
                "subtree"
            )
        if status in _DOWN_STATUSES:
            return self._trip(f"is sealed or down (HTTP {status})", doing, path)
        if status == 501:
            return VaultUnavailable(f"Vault at {self.addr} is not initialised; initialise it")
        return VaultUnavailable(
            f"Vault at {self.addr} answered HTTP {status} while {doing} {path!r}; retry later"
        )

    def network_error(self, error: BaseException, method: str, doing: str, path: str) -> Exception:
        """A call that got no answer. A write may still have been applied: say so."""
        timed_out = _is_timeout(error)
        if method.upper() in _MUTATING and not _never_sent(error):
            if timed_out:  # a dropped connection alone does not prove Vault is down
                self._trip("did not answer a write in time", doing, path)
            return OutcomeUnknown(
                f"Vault at {self.addr} sent no answer while {doing} {path!r}: the change may "
                "or may not have been applied. Read the secret's versions once Vault is back, "
                "then retry (a write with check-and-set, cas=<current version>, so it cannot "
                "apply twice)"
            )
        return self._trip("timed out" if timed_out else "is unreachable", doing, path)

    @staticmethod
    def _retry_read(error: BaseException, method: str, attempt: int) -> bool:
        """A read that lost a reused connection (closed while idle) is sent again, once."""
        return (
            attempt == 1
            and method.upper() not in _MUTATING
            and not _is_timeout(error)
            and not _never_sent(error)
        )

    # -- circuit breaker ------------------------------------------------------

    def _trip(self, reason: str, doing: str, path: str) -> VaultUnavailable:
        """Mark Vault down (starting the probe) and return the error for this call.

        The remembered reason names no path: other callers' errors quote it.
        """
        if self._open(reason) and self.on_down is not None:
            self.on_down()
        where = (f" while {doing}" if doing else "") + (f" {path!r}" if path else "")
        return VaultUnavailable(f"Vault at {self.addr} {reason}{where}; retry later")

    def mark_down(self, reason: str) -> None:
        """Another worker or replica found Vault down: fail fast here too until the probe
        (ours) sees it answer, instead of each worker waiting out its own timeout."""
        self._open(reason)

    def _open(self, reason: str) -> bool:
        """Open the breaker and start the probe; False if it was open already (or disabled)."""
        with self._breaker_lock:
            if self._down is None and self._breaker:
                self._down = reason
                self._down_since = time.monotonic()
                log.warning(
                    "Vault at %s %s; failing fast until it answers again", self.addr, reason
                )
                if not self._stop.is_set():
                    self._probe_thread = threading.Thread(
                        target=self._probe_loop, name="secretsd-vault-probe", daemon=True
                    )
                    self._probe_thread.start()
                return True
        return False

    @property
    def known_down(self) -> bool:
        return self._down is not None

    def _check_breaker(self) -> None:
        down = self._down
        if down is not None:
            ago = time.monotonic() - self._down_since
            raise VaultUnavailable(
                f"Vault at {self.addr} is down ({down}, {ago:.1f} s ago); secretsd checks it "
                f"every {self.probe_interval:g} s and fails fast meanwhile; retry later"
            )

    def _probe_loop(self) -> None:
        while not self._stop.wait(self.probe_interval):
            if self._probe():
                with self._breaker_lock:
                    self._down = None
                    self._probe_thread = None
                log.warning("Vault at %s answers again", self.addr)
                return

    def _probe(self) -> bool:
        try:
            answer = self.client.session.get(
                f"{self.addr}/v1/sys/health",
                timeout=min(self.probe_interval, self.timeout),
                verify=self._verify,
            )
        except requests.exceptions.RequestException as error:
            if _never_sent(error):
                self._fail_over()  # the next probe asks the next node
            return False
        return answer.status_code not in _DOWN_STATUSES and answer.status_code != 501

    # -- authentication -------------------------------------------------------

    @property
    def token(self) -> str:
        return str(self.client.token or "")

    def login(self) -> None:
        """Log in now (raises VaultUnavailable with the reason when it cannot)."""
        with self._login_lock:
            self._login_locked()

    def _relogin(self, stale_token: str) -> None:
        """Log in again unless another caller already replaced ``stale_token``."""
        with self._login_lock:
            if self.token == stale_token or not self._logged_in:
                self._login_locked()

    def _login_locked(self) -> None:
        self._check_breaker()
        try:
            ttl = self._auth.login(self.client)
        except VaultAnswered as answer:
            if answer.status in (400, 401, 403):
                how = "AppRole role_id/secret_id" if self._auth.uses_approle else "token"
                raise VaultUnavailable(
                    f"Vault at {self.addr} refused secretsd's {how}; check SECRETSD_VAULT_* "
                    "credentials and that they are not expired or revoked"
                ) from None
            raise _as_error(
                self.answer_error(answer.status, answer.body, "logging in", "")
            ) from None
        except requests.exceptions.RequestException as error:
            if len(self._addrs) > 1 and _never_sent(error):
                raise _NeverSent(error) from None
            raise _as_error(self.network_error(error, "GET", "logging in", "")) from None
        self._token_ttl = ttl
        self._logged_in = True

    def start_renewal(self) -> None:
        """Keep secretsd's own token alive in a background thread."""
        if self._renewal_thread is None:
            self._renewal_thread = threading.Thread(
                target=self._renew_loop, name="secretsd-vault-renew", daemon=True
            )
            self._renewal_thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.is_set():
            ttl = self._token_ttl
            # Renew at two thirds of the TTL; check hourly when the token never expires.
            if self._stop.wait(max(ttl * 2 / 3, 1.0) if ttl else 3600.0):
                return
            try:
                self.renew()
            except SecretsdError as error:
                log.warning("renewing secretsd's Vault token failed: %s", error.message)

    def renew(self) -> None:
        """Renew secretsd's token; log in again when renewal is refused."""
        with self._login_lock:
            self._check_breaker()
            try:
                response = self.client.auth.token.renew_self()
            except VaultAnswered:
                self._login_locked()  # refused (expired, revoked): a fresh login
                return
            except requests.exceptions.RequestException as error:
                raise _as_error(
                    self.network_error(error, "GET", "renewing its token", "")
                ) from None
            self._token_ttl = float(response["auth"].get("lease_duration") or 0)

    # -- calls ----------------------------------------------------------------

    def _fail_over(self) -> bool:
        """Move to the next configured node; False when there is no other.

        Only for a connection that was never made: the request did not reach Vault,
        so sending it to another node of the cluster cannot apply it twice.
        """
        if len(self._addrs) < 2:
            return False
        position = self._addrs.index(self.addr) if self.addr in self._addrs else -1
        self.addr = self._addrs[(position + 1) % len(self._addrs)]
        self.client.url = self.addr
        log.warning("Vault node unreachable; failing over to %s", self.addr)
        return True

    def call(self, doing: str, path: str, method: str, fn: Callable[[], T]) -> T:
        """Run one hvac call: breaker, login, one re-login on a stale token, one error table;
        a node that refuses the connection hands the call to the next configured node."""
        self._check_breaker()
        for _ in range(len(self._addrs) - 1):
            try:
                return self._call_once(doing, path, method, fn)
            except _NeverSent:
                self._fail_over()
        try:
            return self._call_once(doing, path, method, fn)
        except _NeverSent as never:
            raise _as_error(self.network_error(never.error, method, doing, path)) from None

    def _call_once(self, doing: str, path: str, method: str, fn: Callable[[], T]) -> T:
        if not self._logged_in:
            self.login()
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                token = self.token
                try:
                    return fn()
                except VaultAnswered as answer:
                    error = self.answer_error(answer.status, answer.body, doing, path)
                    if isinstance(error, _TokenInvalid) and attempt == 1:
                        self._relogin(token)
                        continue
                    raise _as_error(error, doing, path) from None
                except requests.exceptions.RequestException as failure:
                    if len(self._addrs) > 1 and _never_sent(failure):
                        raise _NeverSent(failure) from None
                    if self._retry_read(failure, method, attempt):
                        continue
                    raise self.network_error(failure, method, doing, path) from None
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if self._on_call is not None:
                self._on_call(doing, time.perf_counter() - started)

    async def aget(
        self, doing: str, path: str, api_path: str, params: dict[str, str] | None = None
    ) -> Any:
        """One GET without a thread (the hot path's reads), same contract as :meth:`call`."""
        self._check_breaker()
        for _ in range(len(self._addrs) - 1):
            try:
                return await self._aget_once(doing, path, api_path, params)
            except _NeverSent:
                self._fail_over()
        try:
            return await self._aget_once(doing, path, api_path, params)
        except _NeverSent as never:
            raise _as_error(self.network_error(never.error, "GET", doing, path)) from None

    async def _aget_once(
        self, doing: str, path: str, api_path: str, params: dict[str, str] | None
    ) -> Any:
        import aiohttp

        if not self._logged_in:
            await asyncio.to_thread(self.login)
        session = self._async_session()
        url = f"{self.addr}/v1/{api_path}"
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                token = self.token
                try:
                    async with session.get(
                        url, params=params, headers={"X-Vault-Token": token}
                    ) as answer:
                        status = answer.status
                        raw = await answer.read()
                    body = orjson.loads(raw) if raw else {}
                except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
                    if len(self._addrs) > 1 and isinstance(failure, aiohttp.ClientConnectorError):
                        raise _NeverSent(failure) from None
                    if isinstance(failure, aiohttp.ServerDisconnectedError) and attempt == 1:
                        continue  # a reused connection closed while idle: send it again, once
                    raise self.network_error(failure, "GET", doing, path) from None
                if 200 <= status < 300:
                    return body
                error = self.answer_error(status, body, doing, path)
                if isinstance(error, _TokenInvalid) and attempt == 1:
                    await asyncio.to_thread(self._relogin, token)
                    continue
                raise _as_error(error, doing, path)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if self._on_call is not None:
                self._on_call(doing, time.perf_counter() - started)

    def _async_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=64, ssl=self._ssl_context())
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                raise_for_status=False,
            )
            self._session_loop = loop
        return self._session

    def _ssl_context(self) -> Any:
        import ssl

        if not self.addr.startswith("https://"):
            return None
        if self._verify is False:
            return False
        if isinstance(self._verify, str):
            return ssl.create_default_context(cafile=self._verify)
        return ssl.create_default_context()

    # -- health and shutdown ----------------------------------------------------

    def health(self) -> VaultHealth:
        """Reachable, initialised and unsealed? Never raises, never waits on the breaker."""
        try:
            answer = self.client.session.get(
                f"{self.addr}/v1/sys/health", timeout=self.timeout, verify=self._verify
            )
            body = answer.json()
        except requests.exceptions.RequestException as error:
            reason = "timed out" if _is_timeout(error) else "is unreachable"
            return VaultHealth(False, False, True, f"Vault at {self.addr} {reason}")
        except ValueError:
            return VaultHealth(True, False, True, f"Vault at {self.addr} answered non-JSON")
        initialized = bool(body.get("initialized"))
        sealed = bool(body.get("sealed", True))
        detail = "ok" if initialized and not sealed else "sealed or not initialised"
        return VaultHealth(True, initialized, sealed, detail)

    def close(self) -> None:
        self._stop.set()
        self.client.adapter.close()

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def _as_error(error: Exception, doing: str = "", path: str = "") -> Exception:
    """Internal signals that escaped their retry become plain errors."""
    if isinstance(error, _TokenInvalid):
        return VaultUnavailable(
            f"Vault still calls secretsd's token invalid after a fresh login while {doing} "
            f"{path!r}; check SECRETSD_VAULT_* credentials"
        )
    return error


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, requests.exceptions.Timeout | TimeoutError | asyncio.TimeoutError)


def _never_sent(error: BaseException) -> bool:
    """True when the request certainly did not reach Vault (so a write was not applied)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        import urllib3.exceptions

        seen: set[int] = set()
        pending: list[BaseException | None] = [error]
        while pending:
            current = pending.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
                return True
            pending += [current.__cause__, current.__context__]
            pending += [a for a in current.args if isinstance(a, BaseException)]
            reason = getattr(current, "reason", None)
            if isinstance(reason, BaseException):
                pending.append(reason)
        return False
    return False
