"""A dashboard session: a browser signed in with an API key, without holding the key.

Signing in proves the key once; the browser then holds only the session's own token
(``aps_<session id>_<secret>``, of which only the hash is stored). A session ends when
its lifetime runs out (``expires_at``, fixed when it opens), when it is closed (signing
out), or when its key stops working (revoked: the key is checked on every use). Opening
and closing are events, so who signed in to the dashboard, when, and who signed out is in
the audit log like every other change.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from uuid import UUID

from domain import tokens
from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.keys import hash_secret
from domain.names import check_text

SESSION_PREFIX = "aps_"
MAX_LIFETIME = timedelta(days=7)


class DashboardSession(HiveAggregate):
    class Opened(HiveAggregate.Created):
        key_id: UUID  # the key it was opened with: its principal is the session's
        secret_hash: str
        expires_at: datetime

    class Closed(HiveAggregate.Event):
        why: str

        def apply(self, session: DashboardSession) -> None:
            session.closed = self.why

    def __init__(self, key_id: UUID, secret_hash: str, expires_at: datetime) -> None:
        self.key_id = key_id
        self.secret_hash = secret_hash
        self.expires_at = expires_at
        self.closed: str | None = None  # why it was closed; None while open

    @classmethod
    def open(
        cls,
        *,
        session_id: UUID,
        key_id: UUID,
        secret_hash: str,
        lifetime: timedelta,
        cause: Cause,
        at: datetime,
    ) -> DashboardSession:
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise InvalidInput(f"a session lasts more than 0 s and at most {MAX_LIFETIME}")
        return cls._open(
            cls.Opened,
            id=session_id,
            cause=cause,
            at=at,
            key_id=key_id,
            secret_hash=secret_hash,
            expires_at=at + lifetime,
        )

    def close(self, why: str, cause: Cause, at: datetime) -> None:
        if self.closed is not None:
            raise InvalidTransition("the session is closed already", session_id=self.id)
        self._record(self.Closed, cause, at, why=check_text("why", why))

    def admits(self, secret: str, now: datetime) -> bool:
        """The holder of ``secret`` is signed in by this session at ``now``."""
        return (
            self.closed is None
            and now < self.expires_at
            and hmac.compare_digest(self.secret_hash, hash_secret(secret))
        )


def format_token(session_id: UUID, secret: str) -> str:
    return tokens.join(SESSION_PREFIX, session_id, secret)


def parse_token(token: str) -> tuple[UUID, str] | None:
    return tokens.split(SESSION_PREFIX, token)
