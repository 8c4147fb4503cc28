"""Everything one worker process holds while it serves: built in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from secretsd.audit import AuditEvent, AuditLog
from secretsd.auth.approle import AppRoleStore, LoginRefused
from secretsd.auth.kubernetes import KubernetesAuth
from secretsd.auth.tokens import Identity, IssuedToken, TokenStore, hash_token
from secretsd.backends.base import ServedBackend
from secretsd.changes import Change, ChangeFeed, LocalGeneration
from secretsd.config import Settings
from secretsd.db.engine import database_errors, retire_engine
from secretsd.errors import Forbidden, RateLimited, SecretsdError, Unauthenticated
from secretsd.fsutil import ensure_private_dir, write_private_file
from secretsd.policy import Policy, PolicySet, builtin_policies
from secretsd.policy_store import PolicyStore
from secretsd.server.background import BackgroundTasks
from secretsd.server.known_roles import KnownRoles
from secretsd.server.metrics import Metrics
from secretsd.server.ratelimit import AuthLimiter
from secretsd.server.secrets_service import SecretsService
from secretsd.server.stale_store import StaleStore
from secretsd.server.watch import WatchHub

__all__ = ["AppState", "Caller", "audit_event", "ensure_admin_token"]

log = logging.getLogger(__name__)

_IDENTITY_TTL = 5.0
_IDENTITY_CACHE_MAX = 10_000
_DECISION_CACHE_MAX = 100_000
_CONVERGENCE_BOUND = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated identity of one request, plus where it came from."""

    identity: Identity
    client: str
    request_id: str


def audit_event(
    identity: Identity | None,
    *,
    action: str,
    outcome: str,
    path: str,
    client: str,
    request_id: str,
    version: int | None = None,
    detail: str = "",
) -> AuditEvent:
    """The one mapping from who did what to an audit record (no value, no token).

    Text that may come from outside is cut to its column (path 600, client and
    request id 64, detail 300): an unauthenticated request for a 700-character
    path must not make its own record, and the batch it is committed with, fail.
    """
    return AuditEvent(
        action=action,
        outcome=outcome,
        path=path[:600],
        version=version,
        identity=identity.accessor if identity else "",
        display_name=identity.display_name if identity else "",
        method=identity.method if identity else "",
        client=client[:64],
        request_id=request_id[:64],
        detail=detail[:300],
    )


class Authenticator:
    """Token → identity, cached briefly per worker; revocations arrive via the change feed.

    Failures are cached too (briefly), so a flood of bad tokens does not
    become a flood of database queries.
    """

    def __init__(self, store: TokenStore, current: Callable[[], bool] = lambda: True) -> None:
        self._store = store
        self._cache: dict[str, tuple[Identity | Unauthenticated, float]] = {}
        self._current = current

    def peek(self, token: str) -> Identity | None:
        """The identity if it is cached, fresh and unexpired; None means "ask identify()".

        None too while another worker's identity or policy change is not applied
        here yet: the caller then takes the path that applies it first.
        """
        if not self._current():
            return None
        cached = self._cache.get(hash_token(token))
        if cached is None or time.monotonic() - cached[1] >= _IDENTITY_TTL:
            return None
        identity = cached[0]
        if not isinstance(identity, Identity) or _expired(identity):
            return None
        return identity

    def forget_accessor(self, accessor: str) -> None:
        stale = [
            key
            for key, (known, _) in self._cache.items()
            if isinstance(known, Identity) and known.accessor == accessor
        ]
        for key in stale:
            del self._cache[key]

    async def identify(self, token: str) -> Identity:
        token_hash = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(token_hash)
        known: Identity | Unauthenticated
        if (
            cached is not None
            and now - cached[1] < _IDENTITY_TTL
            and not (isinstance(cached[0], Identity) and _expired(cached[0]))
        ):
            known = cached[0]
        else:
            try:
                known = await asyncio.to_thread(self._store.authenticate_hash, token_hash)
            except Unauthenticated as error:
                known = error
            if len(self._cache) >= _IDENTITY_CACHE_MAX:
                self._cache.clear()
            self._cache[token_hash] = (known, now)
        if isinstance(known, Unauthenticated):
            raise Unauthenticated(known.message)
        return known


def _expired(identity: Identity) -> bool:
    return identity.expires_at is not None and identity.expires_at <= time.time()


class AppState:
    """The per-worker object graph (engine, backend, cache, feed, audit...)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        backend: ServedBackend,
        metrics: Metrics,
    ) -> None:
        from secretsd.cache import ReadCache

        self.settings = settings
        self.engine = engine
        self.backend = backend
        self.metrics = metrics
        self.tokens = TokenStore(engine)
        self.authenticator = Authenticator(self.tokens, self.is_current)
        self.feed = ChangeFeed(
            engine, settings.change_poll_interval, LocalGeneration(_generation_file(settings))
        )
        self.feed.subscribe(self._on_change)
        cache = ReadCache(settings.cache_ttl) if settings.cache_enabled else None
        stale = (
            StaleStore(engine, backend, settings.stale_max_age)
            if cache is not None and settings.stale_max_age > 0
            else None
        )
        self.secrets = SecretsService(backend, cache, self.feed, metrics, stale)
        self.watch = WatchHub(self.secrets, settings.watch_interval)
        self.audit_log = AuditLog.for_settings(engine, settings)
        self.policy_store = PolicyStore(engine)
        self.approles = AppRoleStore(engine, self.tokens)
        self.kubernetes = KubernetesAuth(engine, self.tokens)
        self.limiter = AuthLimiter(
            settings.auth_failure_limit_per_client,
            settings.auth_failure_limit_per_role,
            settings.rate_limit_storage,
        )
        self.login_roles = KnownRoles(self._login_roles)
        self.policies: dict[str, Policy] = builtin_policies()
        self._policy_sets: dict[tuple[str, ...], PolicySet] = {}
        self._decisions: dict[tuple[tuple[str, ...], str, str], bool] = {}
        self.background = BackgroundTasks()
        self._generation_seen = self.feed.generation.read()
        # Other replicas' changes apply within this bound, or the worker polls first.
        self._convergence_bound = max(_CONVERGENCE_BOUND, 3 * settings.change_poll_interval)
        self._sync_lock = asyncio.Lock()
        self._policy_changes = 0
        self._policy_loaded = 0

    def _on_change(self, change: Change) -> None:
        if change.kind == "token":
            self.authenticator.forget_accessor(change.key)
        elif change.kind == "role":
            self.login_roles.changed()
        elif change.kind == "policy":
            self._policy_changes += 1
            self.background.spawn(self.reload_policies())

    def _login_roles(self) -> list[tuple[str, str]]:
        """Every (method, role) a login can name: AppRole role_ids, Kubernetes role names."""
        approles = [("approle", role_id) for role_id in self.approles.role_ids()]
        return approles + [("kubernetes", name) for name in self.kubernetes.list_roles()]

    async def reload_policies(self) -> None:
        """Load every policy again and forget compiled sets and memoised decisions."""
        wanted = self._policy_changes
        try:
            policies = await asyncio.to_thread(self.policy_store.load_all)
        except SecretsdError as error:
            log.warning("reloading policies failed, keeping the previous ones: %s", error.message)
            return
        self.policies = policies
        self._policy_sets = {}
        self._decisions = {}
        self._policy_loaded = max(self._policy_loaded, wanted)

    async def know_policies(self, names: tuple[str, ...]) -> None:
        """Load the policies now when a freshly looked-up token names one this worker
        has not seen.

        A token is issued only after the policies it names exist, so an unknown
        name is a policy another replica wrote moments ago (inside the change-feed
        bound). Reloading here keeps "write a policy, issue a token with it, read
        through another replica" causally consistent instead of a wrong 403. Called
        on token-cache misses only, so a token naming a deleted policy costs one
        reload per lookup, not one per request.
        """
        if any(name not in self.policies for name in names):
            await self.reload_policies()

    def is_current(self) -> bool:
        """No identity or policy change is left to apply: none of this replica's
        (the shared counter, a memory read) and none older than the bound of
        other replicas' (the last successful feed poll is recent enough)."""
        return (
            self.feed.generation.read() == self._generation_seen
            and self._policy_loaded >= self._policy_changes
            and time.monotonic() - self.feed.polled_at < self._convergence_bound
        )

    async def sync(self) -> None:
        """Apply every identity and policy change published so far, before a decision.

        Cheap when nothing changed; otherwise one feed poll (and a policy
        reload if a policy changed), shared by the requests waiting for it.
        """
        if self.is_current():
            return
        async with self._sync_lock:
            generation = self.feed.generation.read()
            stale = time.monotonic() - self.feed.polled_at >= self._convergence_bound
            if generation != self._generation_seen or stale:
                await self.feed.poll_once()  # DatabaseUnavailable: fail closed (503)
                self._generation_seen = generation
            if self._policy_loaded < self._policy_changes:
                await self.reload_policies()

    async def publish(self, kind: str, key: str) -> None:
        """Tell this worker now and every other worker and replica through the feed."""
        self.feed.deliver_local(Change(kind, key))
        await asyncio.to_thread(self.feed.publish, kind, key)

    async def start(self) -> None:
        if self.secrets.stale is not None:
            await self.secrets.stale.load_key()
        await self.reload_policies()
        await self.login_roles.reload()
        await self.audit_log.start()
        await self.feed.start()

    async def stop(self) -> None:
        """Release everything, in reverse order of start. A step that raises does not skip the
        ones after it: a connection left checked out would be closed by the garbage collector
        at some later, random point (a ``ResourceWarning`` far from its cause). Background
        work the feed started finishes first; anything that still outlives the engine has
        its connection closed when it returns it (``retire_engine``)."""
        async with contextlib.AsyncExitStack() as steps:
            steps.callback(retire_engine, self.engine)
            steps.callback(self.backend.close)
            steps.push_async_callback(self.backend.aclose)
            steps.push_async_callback(self.audit_log.stop)
            steps.callback(self.feed.generation.close)
            steps.push_async_callback(self.background.finish)
            steps.push_async_callback(self.login_roles.background.finish)
            steps.push_async_callback(self.secrets.background.finish)
            steps.push_async_callback(self.feed.stop)
            if self.secrets.stale is not None:
                steps.push_async_callback(self.secrets.stale.close)
            steps.push_async_callback(self.watch.close)

    # -- authorisation and audit -----------------------------------------

    def decide(self, policy_names: tuple[str, ...], capability: str, path: str) -> bool:
        """Policy decision, memoised per (policies, capability, path) until policies change."""
        key = (policy_names, capability, path)
        cached = self._decisions.get(key)
        if cached is None:
            cached = self.policy_set(policy_names).allows(capability, path)
            if len(self._decisions) >= _DECISION_CACHE_MAX:
                self._decisions.clear()
            self._decisions[key] = cached
        return cached

    def policy_set(self, policy_names: tuple[str, ...]) -> PolicySet:
        """The compiled rules of a token's policies (unknown names grant nothing)."""
        compiled = self._policy_sets.get(policy_names)
        if compiled is None:
            compiled = PolicySet(self.policies[n] for n in policy_names if n in self.policies)
            self._policy_sets[policy_names] = compiled
        return compiled

    def allowed(self, caller: Caller, capability: str, path: str) -> bool:
        return self.decide(caller.identity.policies, capability, path)

    async def audit(
        self,
        caller: Caller | None,
        action: str,
        path: str,
        outcome: str,
        *,
        version: int | None = None,
        detail: str = "",
        client: str = "",
        request_id: str = "",
    ) -> None:
        identity = caller.identity if caller is not None else None
        await self.audit_log.record(
            audit_event(
                identity,
                action=action,
                outcome=outcome,
                path=path,
                version=version,
                client=caller.client if caller else client,
                request_id=caller.request_id if caller else request_id,
                detail=detail,
            )
        )
        self.metrics.audit_records.inc()

    async def guard(
        self, caller: Caller, capability: str, path: str, action: str, version: int | None = None
    ) -> None:
        """Raise Forbidden (after auditing the denial) unless ``caller`` may do this."""
        if self.allowed(caller, capability, path):
            return
        await self.audit(caller, action, path, "denied", version=version, detail="no policy allows")
        who = caller.identity.display_name or "this token"
        raise Forbidden(
            f"{capability} on {path!r} is not allowed for {who}"
            f" (policies: {', '.join(caller.identity.policies) or 'none'}); ask an admin for a "
            "policy that grants it"
        )

    async def audited_login(
        self,
        *,
        method: str,
        path: str,
        client: str,
        request_id: str,
        refused_message: str,
        attempt: Callable[[], tuple[IssuedToken, str, str]],
        role: str = "",
    ) -> IssuedToken:
        """Run a login in a thread and audit it either way.

        ``attempt`` returns (token, audited path, detail) or raises LoginRefused,
        whose precise reason goes to the audit record while the caller gets
        ``refused_message``, which never says which credential was wrong.
        Failures count against (``client``, ``role``) and ``role`` (see
        ratelimit.py); once either is over its limit, attempts get 429 before
        any work is done. A login naming no existing role (``refused.unknown_role``)
        counts against the client's shared unknown-role budget, checked once
        the lookup has found no role (no secret was hashed or compared).
        """
        try:
            self.limiter.check_login(client, method, role)
            try:
                issued, where, detail = await asyncio.to_thread(attempt)
            except LoginRefused as refused:
                if refused.unknown_role:
                    self.limiter.check_login(client, method, "")
                self.limiter.failed_login(client, method, role, known=not refused.unknown_role)
                await self.audit(
                    None,
                    "login",
                    path,
                    "denied",
                    detail=f"{method}: {refused.reason}",
                    client=client,
                    request_id=request_id,
                )
                raise Unauthenticated(refused_message) from None
        except RateLimited as limited:
            folded = self.limiter.refusal_detail(client, f"{method}: rate limited")
            if folded is not None:
                await self.audit(
                    None,
                    "login",
                    path,
                    "denied",
                    detail=folded,
                    client=client,
                    request_id=request_id,
                )
            raise limited from None
        await self.audit_log.record(
            audit_event(
                issued.identity,
                action="login",
                outcome="allowed",
                path=where,
                client=client,
                request_id=request_id,
                detail=detail,
            )
        )
        return issued

    async def audit_error(
        self, caller: Caller, action: str, path: str, error: SecretsdError, version: int | None
    ) -> None:
        await self.audit(caller, action, path, "error", version=version, detail=error.code)

    # -- readiness ----------------------------------------------------------

    def database_ok(self) -> tuple[bool, str]:
        try:
            with database_errors(self.engine), self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SecretsdError as error:
            return False, error.message
        return True, "ok"


def _generation_file(settings: Settings) -> Path | None:
    try:
        ensure_private_dir(settings.data_dir)
    except OSError:
        return None
    return settings.data_dir / "authz-generation"


def ensure_admin_token(settings: Settings, store: TokenStore) -> Path | None:
    """Create the first admin token once per database; write it 0600 to the data dir.

    Returns the file's path when this call created the token, else None.
    """
    chosen = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
    issued = store.bootstrap_admin(chosen)
    if issued is None:
        return None
    write_private_file(settings.admin_token_file, issued.token + "\n")
    log.info("created the admin token (accessor %s)", issued.identity.accessor)
    return settings.admin_token_file
