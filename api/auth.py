"""Who is calling: bearer tokens resolved to principals, and the role checks routes declare.

``KeyRing`` keeps each ``ApiKey`` aggregate it loaded for ``ttl_s`` seconds and remembers
unknown key ids for a shorter while, so a flood of made-up tokens does not become a flood
of reads of the log. A key's every event makes it ``forget`` the key at once (the process
follows the log: ``runtime/key_watch.py``), so a revocation is in force on every process
within the feed's delay, not the ttl. An expired key is refused like a revoked one. Only
the hash of a secret is ever compared, in constant time. Each key's last use is noted in
memory (``take_uses``), for the process to write out now and then (``store/key_use.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.container import container_of
from api.errors import Forbidden, Unauthorized
from api.mode_gate import serve_principal
from api.throttle import address_of, throttle_of
from domain.cause import Cause
from domain.hive import Hive
from domain.keys import ApiKey, Role, parse_token, secret_matches

NEGATIVE_TTL_S = 1.0
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Principal:
    key_id: UUID
    name: str
    role: Role
    bot_id: UUID | None  # set for a bot's own key; None for every other key

    @property
    def actor(self) -> str:
        """Who the events this principal causes are stamped with."""
        return f"bot:{self.bot_id}" if self.bot_id is not None else self.name

    def cause(self, request_id: str) -> Cause:
        return Cause(self.actor, request_id)


class Miss(Enum):
    """The cache alone cannot say: the key must be read from the log."""

    KEY = "not cached"


MISS = Miss.KEY


class KeyRing:
    """Bearer token -> ``Principal`` or None; thread-safe (handlers run in a thread pool)."""

    def __init__(
        self,
        hive: Hive,
        ttl_s: float = 5.0,
        *,
        negative_ttl_s: float = NEGATIVE_TTL_S,
        max_entries: int = MAX_CACHED_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hive = hive
        self.ttl_s = ttl_s
        self.negative_ttl_s = min(negative_ttl_s, ttl_s)
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[UUID, tuple[float, ApiKey | None]] = {}
        self._forgotten = 0  # how many times a key was forgotten: a load that saw it move
        self._used: dict[UUID, datetime] = {}  # key -> when it was last used, not yet written

    def resolve(self, token: str) -> Principal | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        return self._principal(self._key(key_id), secret)

    def cached(self, token: str) -> Principal | Miss | None:
        """As ``resolve``, from the cache alone (never a read of the log): ``MISS`` when
        the key is not cached, or its entry has expired."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is None or cached[0] <= self.clock():
            return MISS
        return self._principal(cached[1], secret)

    def __len__(self) -> int:
        """How many key ids are cached (known keys and remembered misses)."""
        with self._lock:
            return len(self._cache)

    def principal_of(self, key_id: UUID) -> Principal | None:
        """The principal of a live key, by its id alone: for a holder who proved the key
        otherwise (a dashboard session, opened with the key's secret). None once revoked
        or expired, as for a bearer."""
        key = self._key(key_id)
        if key is None or not key.usable(self.hive.clock()):
            return None
        return Principal(key_id=key.id, name=key.principal, role=key.role, bot_id=key.bot_id)

    def forget(self, key_id: UUID) -> None:
        """Drop a cached key now: the log has news of it (revoked, say)."""
        with self._lock:
            self._cache.pop(key_id, None)
            self._forgotten += 1

    def take_uses(self) -> dict[UUID, datetime]:
        """The keys used since the last call, each with the time of its latest use."""
        with self._lock:
            used, self._used = self._used, {}
        return used

    def _principal(self, key: ApiKey | None, secret: str) -> Principal | None:
        if key is None or not secret_matches(key, secret):
            return None
        now = self.hive.clock()
        if not key.usable(now):  # revoked, or expired: refused alike
            return None
        with self._lock:
            self._used[key.id] = now
        return Principal(key_id=key.id, name=key.principal, role=key.role, bot_id=key.bot_id)

    def _key(self, key_id: UUID) -> ApiKey | None:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        for _ in range(2):
            with self._lock:
                forgotten = self._forgotten
            key = self.hive.load_many(ApiKey, [key_id]).get(key_id)  # outside the lock
            with self._lock:
                if self._forgotten != forgotten:  # news of a key came while this was read:
                    continue  # read again, so that what is cached is not older than the news
                ttl = self.ttl_s if key is not None else self.negative_ttl_s
                self._cache.pop(key_id, None)
                if len(self._cache) >= self.max_entries:
                    self._evict(now)
                self._cache[key_id] = (now + ttl, key)
                return key
        return key  # news kept coming: this read, not cached

    def _evict(self, now: float) -> None:
        """Drop expired entries; if that is not enough, the oldest half."""
        for key_id in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key_id]
        if len(self._cache) >= self.max_entries:
            for key_id in list(self._cache)[: max(1, len(self._cache) // 2)]:
                del self._cache[key_id]


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key: `Authorization: Bearer apk_<key id>_<secret>`.",
)


def key_ring(request: Request) -> KeyRing:
    """The keys. Refused first (503) while the database is known to be away: a key not
    cached would be looked up there and wait out its connect timeouts."""
    container = container_of(request)
    container.gate.check()
    return container.keys


def principal_for(request: Request, token: str) -> Principal | None:
    """The key's principal, or None (503 while the database is known to be away)."""
    return key_ring(request).resolve(token)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """401 unless the request carries a live key; the principal is noted for the access log.
    Async, so a cached key costs no hop to the thread pool (every request asks); a key not
    cached is read from the log there, off the event loop. Rate limited (``api.throttle``):
    per key, and per client address for failures (429). In ``critical`` a client key is
    refused (503, ``api.mode_gate``)."""
    throttle, address = throttle_of(request), address_of(request)
    throttle.refuse_failing(address)
    if credentials is None:
        throttle.failed(address)
        raise Unauthorized("an Authorization: Bearer <API key> header is required")
    keys, token = key_ring(request), credentials.credentials
    principal = keys.cached(token)
    if principal is MISS:
        principal = await run_in_threadpool(keys.resolve, token)
    if principal is None:
        throttle.failed(address)
        raise Unauthorized("the API key is not valid (unknown, malformed, revoked or expired)")
    request.state.principal = principal.actor
    throttle.admit(principal)
    serve_principal(container_of(request).modes, principal.role, request.scope.get("state"))
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting the given roles; an admin key is always admitted.

    A bot's *own* key is admitted only by ``require_bot_self``: it acts as that bot alone.
    """
    admitted = frozenset(roles) | {Role.ADMIN}

    async def check(principal: Authenticated) -> Principal:
        if principal.role not in admitted or principal.bot_id is not None:
            raise Forbidden(f"this needs a key with the role {_names(admitted)}")
        return principal

    return check


async def require_enrolment(principal: Authenticated) -> Principal:
    """An enrolment key (role bot, bound to no bot) or an admin key: may register bots."""
    if principal.role is Role.ADMIN or (principal.role is Role.BOT and principal.bot_id is None):
        return principal
    raise Forbidden("registering a bot needs an enrolment key or an admin key")


async def require_sender(principal: Authenticated) -> Principal:
    """A client or admin key, or a bot's own key (it sends as that bot): may send messages."""
    if principal.role in (Role.ADMIN, Role.CLIENT) or principal.bot_id is not None:
        return principal
    raise Forbidden("sending messages needs a client or admin key, or a bot's own key")


def require_bot_self(
    *, allow_admin: bool = False
) -> Callable[[Principal, UUID], Awaitable[Principal]]:
    """A dependency admitting the bot named by the ``bot_id`` path parameter, using its own
    key (and an admin key when ``allow_admin``); 403 for any other key."""

    async def check(principal: Authenticated, bot_id: UUID) -> Principal:
        if principal.role is Role.BOT and principal.bot_id == bot_id:
            return principal
        if allow_admin and principal.role is Role.ADMIN:
            return principal
        if principal.role is Role.BOT and principal.bot_id is not None:
            raise Forbidden("a bot's key acts for that bot only")
        raise Forbidden(
            "this needs the bot's own key" + (" or an admin key" if allow_admin else "")
        )

    return check


def _names(roles: frozenset[Role]) -> str:
    return " or ".join(sorted(str(r) for r in roles))
