"""The dashboard's signed-in browsers: a session token -> the session the log holds.

Sessions are aggregates in the log (``domain.sessions``), so every API process on one
database knows each one: a browser signed in through one process is signed in on all of
them, and signed out of all of them. A process keeps a session it read for at most
``ttl_s`` (1 s), so a sign-out through another process holds here within about a second
(at once through this one). Whether the session's key still works is not kept here: the
caller asks the key ring on every use, so revoking the key ends its sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from uuid import UUID

from api.recent_reads import RecentReads
from domain.cause import Cause
from domain.errors import InvalidTransition
from domain.hive import Hive
from domain.sessions import DashboardSession, parse_token

LIFETIME = timedelta(hours=12)  # absolute: signing in again is the only way to extend it
TTL_S = 1.0


class SessionBook:
    def __init__(
        self, hive: Hive, *, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hive = hive
        self.recent: RecentReads[DashboardSession] = RecentReads(
            self._read, ttl_s=ttl_s, miss_ttl_s=ttl_s, clock=clock
        )

    def open(self, key_id: UUID, cause: Cause, lifetime: timedelta = LIFETIME) -> str:
        """A new session for the key's holder: the token the browser keeps (only its hash
        is stored)."""
        opened = self.hive.sessions.open(key_id, lifetime, cause)
        self.recent.put(opened.session.id, opened.session)
        return opened.token

    def session(self, token: str) -> DashboardSession | None:
        """The open, unexpired session this token proves; None for any other string."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        session_id, secret = parsed
        session = self.recent.get(session_id)
        if session is None or not session.admits(secret, self.hive.clock()):
            return None
        return session

    def close(self, session: DashboardSession, why: str, cause: Cause) -> None:
        with suppress(InvalidTransition):  # closed meanwhile (another tab, another process)
            self.hive.sessions.close(session.id, why, cause)
        self.recent.forget(session.id)

    def _read(self, session_id: UUID) -> DashboardSession | None:
        return self.hive.load_many(DashboardSession, [session_id]).get(session_id)
