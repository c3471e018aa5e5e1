"""The dashboard's sessions room: opened with a key (the token shown once, only its hash
kept) and closed at sign-out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from domain.cause import Cause
from domain.hive.kernel import Committed, Kernel
from domain.keys import hash_secret
from domain.sessions import DashboardSession, format_token


@dataclass(frozen=True)
class OpenedSession:
    session: DashboardSession
    token: str  # handed to the browser once; only its hash is stored


class SessionCommands:
    def __init__(self, kernel: Kernel, new_secret: Callable[[], str]) -> None:
        self.kernel = kernel
        self.new_secret = new_secret

    def open(self, key_id: UUID, lifetime: timedelta, cause: Cause) -> OpenedSession:
        session_id, secret = self.kernel.new_id(), self.new_secret()
        session = DashboardSession.open(
            session_id=session_id,
            key_id=key_id,
            secret_hash=hash_secret(secret),
            lifetime=lifetime,
            cause=cause,
            at=self.kernel.clock(),
        )
        self.kernel.save([session])
        return OpenedSession(session, format_token(session_id, secret))

    def close(self, session_id: UUID, why: str, cause: Cause) -> Committed[DashboardSession]:
        return self.kernel.change(
            DashboardSession, [session_id], lambda s, at: s.close(why, cause, at)
        )
