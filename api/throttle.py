"""Rate limits at the API: a token bucket per key, by its role, and per client address for
what anyone may try (failed authentication, dashboard sign-ins). Over a limit: 429
``rate-limited`` with ``Retry-After`` and the RateLimit header fields (``api.errors``).

The limits are the config's ``rate_limits`` (``runtime.config.RateLimits``), live: a new
version reaches ``configure`` and the next request is held to it (a bucket keeps its
tokens, up to the new burst). The buckets are this process's own, so N API processes
admit N times the rates. ``authenticate`` (``api.auth``) asks ``admit`` for every request
with a key and ``refuse_failing``/``failed`` around a 401; the sign-in route calls
``limit_sign_in(request)`` first thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from api.buckets import Buckets, Refusal
from api.errors import RateLimited
from domain.keys import Role
from runtime.config import Knobs, RateLimit, RateLimits

if TYPE_CHECKING:  # api.auth calls this module: no import cycle at run time
    from api.auth import Principal

UNKNOWN_ADDRESS = "-"  # a connection with no peer address (a Unix socket)


class Throttle:
    def __init__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or RateLimits()
        self.keys = Buckets(clock=clock)
        self.failures = Buckets(clock=clock)
        self.sign_ins = Buckets(clock=clock)

    def configure(self, knobs: Knobs) -> None:
        self.limits = knobs.rate_limits  # one reference swapped: readers need no lock

    def admit(self, principal: Principal) -> None:
        """Take a token from the key's bucket, or refuse the request (429)."""
        limit = self._limit_of(principal)
        refusal = self.keys.take(principal.key_id.int, limit.per_s, limit.burst)
        if refusal is not None:
            raise _refused("this key's rate limit", refusal)

    def refuse_failing(self, address: str) -> None:
        """429 while ``address`` has spent its failed authentications (checked before the
        key is, so a failing address is not answered whether its next key is good)."""
        limit = self.limits.failed_auth
        refusal = self.failures.empty(address, limit.per_s, limit.burst)
        if refusal is not None:
            raise _refused("too many failed authentications from this address", refusal)

    def failed(self, address: str) -> None:
        """A failed authentication from ``address`` (spends one of its tokens)."""
        limit = self.limits.failed_auth
        self.failures.take(address, limit.per_s, limit.burst)

    def sign_in(self, address: str) -> None:
        """A sign-in attempt from ``address``: a token, or 429."""
        limit = self.limits.sign_in
        refusal = self.sign_ins.take(address, limit.per_s, limit.burst)
        if refusal is not None:
            raise _refused("too many sign-ins from this address", refusal)

    def _limit_of(self, principal: Principal) -> RateLimit:
        limits = self.limits
        if principal.bot_id is not None:
            return limits.bot
        role = principal.role
        if role is Role.CLIENT:
            return limits.client
        if role is Role.ADMIN:
            return limits.admin
        return limits.enrolment


def address_of(conn: HTTPConnection) -> str:
    """The client's address (behind a proxy uvicorn trusts, the one it forwarded)."""
    client = conn.scope.get("client")
    return client[0] if client else UNKNOWN_ADDRESS


def limit_sign_in(conn: HTTPConnection) -> None:
    """The sign-in route's first line: 429 when this address has signed in too often."""
    throttle_of(conn).sign_in(address_of(conn))


def throttle_of(conn: HTTPConnection) -> Throttle:
    """The container's (``api.container`` imports this module: read it off the app)."""
    throttle: Throttle = conn.app.state.container.throttle
    return throttle


def _refused(what: str, refusal: Refusal) -> RateLimited:
    return RateLimited(
        f"over {what}; try again in {refusal.retry_after_s:.2f} s",
        retry_after_s=refusal.retry_after_s,
        full_after_s=refusal.full_after_s,
        limit=refusal.burst,
    )
