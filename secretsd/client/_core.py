"""The sans-IO core shared by ``Client`` and ``AsyncClient``.

Every operation is a generator of effects (see ``_effects``): it builds the
request, lets the shell send it, and turns the answer into our own types or
into the one error hierarchy (``secretsd.errors``), so ``except
secretsd.NotFound`` means the same thing in the SDK as in the service. Retries,
logins, token renewal and cache bookkeeping happen here too, once.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from secretsd.backends.base import SecretMetadata, SecretVersion, encode_values
from secretsd.client._auth import AuthState, token_info
from secretsd.client._cache import SecretCache
from secretsd.client._effects import HttpRequest, HttpResponse, Op, Sleep, TransportFailure
from secretsd.client._held import HeldVersions, ReportBatch
from secretsd.client._retry import Retry
from secretsd.client._types import Resolved, SecretWrite, TokenInfo, Written
from secretsd.client._wire import (
    as_path,
    as_reference,
    json_body,
    keyed,
    metadata_from_json,
    pick_value,
    resolved_from_json,
    resolved_from_secret,
    secret_from_json,
    written_from_json,
)
from secretsd.client.config import ClientSettings
from secretsd.errors import (
    ConfigError,
    InvalidInput,
    NotFound,
    RateLimited,
    SecretsdError,
    Unauthenticated,
    Unavailable,
    error_class_for_code,
    error_class_for_status,
)
from secretsd.ref import SCHEME, Reference, validate_path

__all__ = ["ClientCore"]

log = logging.getLogger("secretsd.client")

#: The longest Retry-After taken at its word (an HTTP date or a bigger number is capped).
_RETRY_AFTER_MAX = 3600.0


def retry_after(outcome: HttpResponse | TransportFailure) -> float | None:
    """The delay a refusal asks for: a 429's (1 s if it names none), a 503's if it names one.

    Seconds only (what secretsd sends); an HTTP date counts as the cap.
    """
    if not isinstance(outcome, HttpResponse) or outcome.status not in (429, 503):
        return None
    raw = (outcome.header("retry-after") or "").strip()
    if raw.isascii() and raw.isdigit():
        return min(float(raw), _RETRY_AFTER_MAX)
    if raw:
        return _RETRY_AFTER_MAX
    return 1.0 if outcome.status == 429 else None


#: Prefixes per hash-lookup request (the service accepts up to 10,000).
_HASH_BATCH = 5000
#: Writes per batch request (the service accepts up to 250) and their rough size bound,
#: well under the service's default 1 MiB body limit.
_WRITE_BATCH = 250
_WRITE_BATCH_BYTES = 512 * 1024
#: Reports are background work: a short retry, and none when closing.
_REPORT_RETRY = Retry(attempts=2, refusals=1, max_retry_after=5.0)
_ONE_TRY = Retry(attempts=1, refusals=0)


class ClientCore:
    """State and operations of one client; the shells only move bytes and sleep."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        timeout: float,
        cache_ttl: float,
        retry: Retry,
        auto_renew: bool,
        watch_wait: float,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.retry = retry
        self.watch_wait = watch_wait
        self.auth = AuthState(settings, auto_renew=auto_renew)
        self.cache = SecretCache(cache_ttl)
        #: Versions read, for ``PUT /v1/consumers`` (sent by the shell, see ``_held``).
        self.held = HeldVersions()
        #: Called (by whichever thread read) when a version is news to ``held``.
        self.on_news: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"ClientCore(addr={self.settings.addr!r}, auth={self.auth!r})"

    # -- plumbing -----------------------------------------------------------------

    def error_for(self, outcome: HttpResponse | TransportFailure) -> SecretsdError:
        if isinstance(outcome, TransportFailure) and outcome.kind == "TLS":
            return ConfigError(
                f"TLS with secretsd at {self.settings.addr} failed ({outcome.detail}); if its "
                "certificate comes from a private CA, set SECRETSD_CACERT to that CA's file"
            )
        if isinstance(outcome, TransportFailure):
            return Unavailable(
                f"cannot reach secretsd at {self.settings.addr} ({outcome.kind}: {outcome.detail});"
                " is it running, and is SECRETSD_ADDR right?"
            )
        cls: type[SecretsdError] = SecretsdError
        message = f"secretsd answered HTTP {outcome.status}"
        try:
            error = json.loads(outcome.content)["error"]
            cls = error_class_for_code(str(error["code"]))
            message = str(error["message"])
        except (ValueError, KeyError, TypeError):
            pass
        if cls is SecretsdError:
            cls = error_class_for_status(outcome.status)
        if cls is Unauthenticated and self.settings.credentials_from:
            message += f" (credentials from {self.settings.credentials_from})"
        hint = retry_after(outcome)
        if issubclass(cls, RateLimited):
            return cls(message, retry_after=math.ceil(hint if hint is not None else 1))
        if hint is not None:
            message += f" (the service asks to retry in {math.ceil(hint)} s)"
        return cls(message)

    def call(
        self,
        request: HttpRequest,
        *,
        authenticated: bool = True,
        check_token: bool = True,
        retry: Retry | None = None,
    ) -> Op[HttpResponse]:
        """Send ``request``: log in or renew first if due, retry, map errors."""
        policy = retry or self.retry
        if authenticated and check_token:
            yield from self._ensure_token()
        failures = refused = 0
        waited = 0.0
        refreshed = False
        while True:
            sent = request
            if authenticated:
                sent = replace(request, headers={**request.headers, **self.auth.header()})
            outcome = yield sent
            assert outcome is not None, "the shell must answer an HttpRequest"
            if isinstance(outcome, HttpResponse) and outcome.status < 400:
                return outcome
            if (
                authenticated
                and not refreshed
                and isinstance(outcome, HttpResponse)
                and outcome.status == 401
                and self.auth.on_unauthenticated()
            ):
                refreshed = True
                yield from self._ensure_token()
                continue
            hint = retry_after(outcome)
            if hint is not None:
                assert isinstance(outcome, HttpResponse)
                if not policy.after_refusal(request, outcome.status, hint, refused, waited):
                    raise self.error_for(outcome)
                refused += 1
                waited += hint
                log.info(
                    "%s %s refused (%d); retrying in %.0f s as asked",
                    request.method,
                    request.url,
                    outcome.status,
                    hint,
                )
                yield Sleep(hint)
                continue
            failures += 1
            if policy.should_retry(request.idempotent, outcome, failures):
                delay = policy.delay(failures)
                log.debug(
                    "%s %s failed (%r); retrying in %.2fs",
                    request.method,
                    request.url,
                    outcome,
                    delay,
                )
                yield Sleep(delay)
                continue
            raise self.error_for(outcome)

    def _ensure_token(self) -> Op[None]:
        if self.auth.needs_login():
            response = yield from self.call(self.auth.login_request(), authenticated=False)
            answer = json_body(response)
            self.auth.apply_login(token_info(answer, token=answer.get("token")))
        elif self.auth.needs_lookup():
            self.auth.lookup_started()
            try:
                yield from self.token_self_op()
            except (Unauthenticated, Unavailable):
                raise
            except SecretsdError as error:  # e.g. a service without the endpoint
                log.debug("cannot look up the token's lifetime: %s", error.message)
        if self.auth.renew_due():
            try:
                yield from self.renew_op()
            except SecretsdError as error:
                self.auth.renew_failed()
                log.warning("renewing the secretsd token failed: %s", error.message)

    # -- secrets ------------------------------------------------------------------

    def read_op(
        self, path: str, version: int | None = None, *, revalidate: bool = False
    ) -> Op[SecretVersion]:
        """Read through the cache: served fresh, revalidated with If-None-Match, or fetched."""
        if not revalidate:
            cached = self.cache.fresh(path, version)
            if cached is not None:
                return cached  # noted when it was stored: the hot path stays as it was
        validate_path(path)
        while True:
            etag = self.cache.etag(path, version)
            request = HttpRequest(
                "GET",
                f"/v1/secrets/{path}",
                params={"version": str(version)} if version is not None else None,
                headers={"If-None-Match": etag} if etag else {},
            )
            response = yield from self.call(request)
            stale = response.header("x-secretsd-stale") == "true"
            if stale:
                log.warning("secretsd served %r from its cache: Vault is unavailable", path)
            if response.status == 304:
                secret = self.cache.touch(path, version, stale=stale)
                if secret is not None:
                    if version is None:
                        self._note(path, secret.version)
                    return secret
                continue  # evicted meanwhile: ask again without an ETag
            secret = secret_from_json(json_body(response))
            self.cache.store(path, version, secret, stale=stale)
            if version is None:
                self._note(path, secret.version)
            return secret

    def get_op(self, ref: str | Reference) -> Op[str]:
        parsed = keyed(ref)
        secret = yield from self.read_op(parsed.path, parsed.version)
        return pick_value(secret, parsed.key)

    def get_bytes_op(self, ref: str | Reference) -> Op[bytes]:
        parsed = keyed(ref)
        secret = yield from self.read_op(parsed.path, parsed.version)
        pick_value(secret, parsed.key)
        return secret.value_bytes(parsed.key)

    def get_map_op(self, path_or_ref: str | Reference, version: int | None) -> Op[dict[str, str]]:
        secret = yield from self.read_op(as_path(path_or_ref), version)
        return dict(secret.data)

    def baseline_op(self, path: str) -> Op[int]:
        """The current version of ``path`` for a new watcher (0 if it does not exist yet)."""
        try:
            secret = yield from self.read_op(path)
        except NotFound:
            return 0
        return secret.version

    def poll_op(self, path: str, after: int, wait: float) -> Op[SecretVersion | None]:
        """One long-poll: the first version newer than ``after``, or None at the timeout."""
        request = HttpRequest(
            "GET",
            f"/v1/secrets/{path}",
            params={"wait": f"{wait:g}", "after": str(after)},
            timeout=wait + self.timeout,
        )
        response = yield from self.call(request)
        if response.status == 304:
            return None
        secret = secret_from_json(json_body(response))
        self.cache.store(path, None, secret, stale=response.header("x-secretsd-stale") == "true")
        self._note(path, secret.version)
        return secret

    def resolve_op(
        self, refs: Sequence[str | Reference], *, raise_errors: bool = True
    ) -> Op[list[Resolved]]:
        """Many references, one round trip; references fresh in the cache cost none."""
        results: list[Resolved | None] = []
        remote: list[tuple[int, str]] = []
        for item in refs:
            text = str(item)
            ref = as_reference(item)
            secret = self.cache.fresh(ref.path, ref.version)
            if secret is not None and (ref.key is None or ref.key in secret.data):
                results.append(resolved_from_secret(text, ref, secret))
            else:
                results.append(None)
                remote.append((len(results) - 1, text))
        if remote:
            request = HttpRequest(  # a read, though a POST
                "POST", "/v1/resolve", json={"refs": [t for _, t in remote]}, replayable=True
            )
            response = yield from self.call(request)
            answers = json_body(response).get("results", [])
            if len(answers) != len(remote):
                raise SecretsdError("secretsd answered a resolve with the wrong number of results")
            for (index, _), answer in zip(remote, answers, strict=True):
                results[index] = resolved_from_json(answer)
        final = [r for r in results if r is not None]
        for result in final:
            # Pinned references (``?version=n`` before the ``#key``) hold an old version on
            # purpose: not noted (a string test, no second parse of every reference).
            if result.error is None and "?" not in result.ref.partition("#")[0]:
                self._note(result.path, result.version)
        if raise_errors:
            for result in final:
                if result.error is not None:
                    raise result.error
        return final

    def write_op(
        self,
        path: str,
        data: Mapping[str, str | bytes] | Mapping[str, str | bytes | None],
        *,
        cas: int | None = None,
        binary_keys: frozenset[str] = frozenset(),
        patch: bool = False,
        custom_metadata: Mapping[str, str] | None = None,
    ) -> Op[int]:
        validate_path(path)
        present: dict[str, str | bytes] = {k: v for k, v in data.items() if v is not None}
        text, binary = encode_values(present)
        body: dict[str, Any] = {"data": dict(text)}
        if patch:
            body["data"].update({k: None for k, v in data.items() if v is None})
        if cas is not None:
            body["cas"] = cas
        keys = sorted(binary | binary_keys)
        if keys:
            body["binary_keys"] = keys
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        request = HttpRequest(
            "PATCH" if patch else "PUT",
            f"/v1/secrets/{path}",
            json=body,
            idempotent=False,
            replayable=cas is not None,  # a replay that had landed fails its check
        )
        response = yield from self.call(request)
        self.cache.invalidate(path)
        return int(json_body(response)["version"])

    def write_many_op(
        self, writes: Sequence[SecretWrite], *, raise_errors: bool = True
    ) -> Op[list[Written]]:
        """Many writes, one round trip per batch of up to 250 (and ~512 KiB).

        Each write is authorised, audited and check-and-set on its own by the
        service; the answers come back in order. With ``raise_errors`` the first
        failed write raises its error once every batch was sent (the others stand).
        """
        bodies: list[dict[str, Any]] = []
        for write in writes:
            validate_path(write.path)
            text, binary = encode_values(write.data)
            body: dict[str, Any] = {"path": write.path, "data": dict(text)}
            if write.cas is not None:
                body["cas"] = write.cas
            if binary:
                body["binary_keys"] = sorted(binary)
            if write.custom_metadata is not None:
                body["custom_metadata"] = dict(write.custom_metadata)
            bodies.append(body)
        results: list[Written] = []
        for chunk in _write_chunks(bodies):
            request = HttpRequest(
                "POST", "/v1/secrets:batch", json={"writes": chunk}, idempotent=False
            )
            try:
                response = yield from self.call(request)
            finally:
                for body in chunk:  # a failed request may still have written some
                    self.cache.invalidate(body["path"])
            answers = json_body(response).get("results", [])
            if len(answers) != len(chunk):
                raise SecretsdError(
                    "secretsd answered a batch write with the wrong number of results"
                )
            results.extend(written_from_json(answer) for answer in answers)
        if raise_errors:
            for result in results:
                if result.error is not None:
                    raise result.error
        return results

    def list_op(self, prefix: str) -> Op[list[str]]:
        """Names under a folder, given as a path or a ``secretsd://`` prefix."""
        prefix = prefix.removeprefix(SCHEME).strip("/")
        validate_path(prefix, allow_empty=True)
        url = f"/v1/metadata/{prefix}" if prefix else "/v1/metadata"
        response = yield from self.call(HttpRequest("GET", url, params={"list": "true"}))
        return [str(k) for k in json_body(response).get("keys", [])]

    def metadata_op(self, path: str) -> Op[SecretMetadata]:
        validate_path(path)
        response = yield from self.call(HttpRequest("GET", f"/v1/metadata/{path}"))
        return metadata_from_json(json_body(response))

    def update_metadata_op(
        self,
        path: str,
        custom_metadata: Mapping[str, str] | None = None,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> Op[None]:
        validate_path(path)
        body: dict[str, Any] = {}
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        if max_versions is not None:
            body["max_versions"] = max_versions
        if cas_required is not None:
            body["cas_required"] = cas_required
        yield from self.call(HttpRequest("PUT", f"/v1/metadata/{path}", json=body))
        self.cache.invalidate(path)

    def delete_op(
        self, path: str, versions: Sequence[int] | None = None, *, destroy: bool = False
    ) -> Op[None]:
        validate_path(path)
        params: dict[str, str] = {}
        if versions:
            params["versions"] = ",".join(str(v) for v in versions)
        if destroy:
            params["destroy"] = "true"
        yield from self.call(HttpRequest("DELETE", f"/v1/secrets/{path}", params=params or None))
        self.cache.invalidate(path)

    def versions_op(self, action: str, path: str, versions: Sequence[int]) -> Op[None]:
        """``undelete`` or ``destroy`` the given versions."""
        validate_path(path)
        body = {"versions": [int(v) for v in versions]}
        yield from self.call(HttpRequest("POST", f"/v1/{action}/{path}", json=body))
        self.cache.invalidate(path)

    def delete_all_op(self, path: str) -> Op[None]:
        validate_path(path)
        yield from self.call(HttpRequest("DELETE", f"/v1/metadata/{path}"))
        self.cache.invalidate(path)

    def value_hashes_op(self, prefixes: Sequence[str]) -> Op[set[str]]:
        """Full SHA-256 of the readable stored values whose hash starts with a prefix.

        Only five-hex-digit prefixes leave the caller (k-anonymity); a read, so
        retried like one. Batched under the service's per-request cap.
        """
        wanted = sorted(set(prefixes))
        found: set[str] = set()
        for start in range(0, len(wanted), _HASH_BATCH):
            request = HttpRequest(
                "POST",
                "/v1/values/hash-lookup",
                json={"prefixes": wanted[start : start + _HASH_BATCH]},
            )
            response = yield from self.call(request)
            body = json_body(response)
            hashes = body.get("hashes") if isinstance(body, dict) else None
            if not isinstance(hashes, list) or body.get("algorithm") != "sha256":
                raise SecretsdError("secretsd answered the hash lookup in an unknown format")
            found.update(h for h in hashes if isinstance(h, str))
        return found

    # -- tokens -------------------------------------------------------------------

    def token_self_op(self) -> Op[TokenInfo]:
        request = HttpRequest("GET", "/v1/auth/tokens/self")
        response = yield from self.call(request, check_token=False)
        info = token_info(json_body(response))
        self.auth.lookup_started()
        self.auth.apply_lifetime(info)
        return info

    def renew_op(self, increment: str | None = None) -> Op[TokenInfo]:
        body = {"increment": increment} if increment else {}
        request = HttpRequest("POST", "/v1/auth/tokens/renew-self", json=body)
        # check_token=False: renewing must not trigger renewing.
        response = yield from self.call(request, check_token=False)
        info = token_info(json_body(response))
        self.auth.apply_lifetime(info)
        return info

    def login_op(self, method: str, body: Mapping[str, str]) -> Op[TokenInfo]:
        """``approle`` or ``kubernetes`` login; the client then uses the new token."""
        request = HttpRequest(
            "POST", f"/v1/auth/{method}/login", json=dict(body), idempotent=False, login=True
        )
        response = yield from self.call(request, authenticated=False)
        answer = json_body(response)
        info = token_info(answer, token=answer.get("token"))
        if not info.token:
            raise Unauthenticated("the login answer carried no token")
        self.auth.use_token(info.token)
        self.auth.apply_lifetime(info)
        self.cache.clear()  # another identity may see other secrets
        return info

    # -- consumer reports ---------------------------------------------------------

    def _note(self, path: str, version: int) -> None:
        if self.held.note(path, version) and self.on_news is not None:
            self.on_news()

    def report_op(self, batch: ReportBatch, consumer: str, *, final: bool = False) -> Op[None]:
        """``PUT /v1/consumers``: tell the service which versions this process holds.

        Sent in the background (``final``: once, at close, without logging in
        again or retrying, so closing stays quick).
        """
        request = HttpRequest(
            "PUT", "/v1/consumers", json=batch.body(consumer), timeout=min(self.timeout, 5.0)
        )
        yield from self.call(
            request, check_token=not final, retry=_ONE_TRY if final else _REPORT_RETRY
        )

    # -- any other endpoint -------------------------------------------------------

    def request_op(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Op[Any]:
        """Any API call (administration: tokens, policies, AppRole, audit), with the same
        login, retry and error mapping as the typed operations. Returns the JSON body,
        or None for an empty answer."""
        if not url.startswith("/v1/"):
            raise InvalidInput(f"request paths start with /v1/, got {url[:60]!r}")
        idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        request = HttpRequest(method.upper(), url, params=params, json=json, idempotent=idempotent)
        response = yield from self.call(request)
        return json_body(response) if response.content else None


def _write_chunks(bodies: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split write bodies into batches the service accepts (count and rough byte size)."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for body in bodies:
        weight = 64 + sum(len(k) + len(v) + 8 for k, v in body["data"].items())
        weight += sum(len(k) + len(v) + 8 for k, v in (body.get("custom_metadata") or {}).items())
        if current and (len(current) >= _WRITE_BATCH or size + weight > _WRITE_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(body)
        size += weight
    if current:
        chunks.append(current)
    return chunks
