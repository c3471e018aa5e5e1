"""An API key: who may talk to the hive, in which role, under which name, until when.

Only a hash of the secret is stored; the secret is shown once, when the key is issued.
A key is usable until it is revoked or its expiry passes; both are refused alike. Who
issued it and when are its ``Issued`` event's actor and time. When it was last used is
soft state kept beside the log (``store/key_use.py``), not an event: a write per request
is not history worth keeping.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain import tokens
from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.names import check_short_name

MAX_LIFETIME = timedelta(days=3660)  # an expiry at most about ten years ahead


class Role(StrEnum):
    ADMIN = "admin"
    CLIENT = "client"
    BOT = "bot"


class KeyState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiKey(HiveAggregate):
    class Issued(HiveAggregate.Created):
        principal: str
        role: str
        secret_hash: str
        bot_id: UUID | None
        name: str
        expires_at: datetime | None
        replaces: UUID | None  # the key this one was issued to replace (rotation)

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Keys issued before they had names and expiry: named after their principal,
            never expiring."""
            state["name"] = state["principal"]
            state["expires_at"] = None
            state["replaces"] = None

    class Revoked(HiveAggregate.Event):
        replaced_by: UUID | None  # the key issued in its place (rotation)

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Before rotation: a key was only ever revoked."""
            state["replaced_by"] = None

        def apply(self, key: ApiKey) -> None:
            key.revoked = True
            key.revoked_at = self.timestamp
            key.revoked_by = self.actor
            key.replaced_by = self.replaced_by

    def __init__(
        self,
        principal: str,
        role: str,
        secret_hash: str,
        bot_id: UUID | None,
        name: str,
        expires_at: datetime | None,
        replaces: UUID | None,
        actor: str,
    ) -> None:
        self.principal = principal
        self.role = Role(role)
        self.secret_hash = secret_hash
        self.bot_id = bot_id
        self.name = name
        self.expires_at = expires_at
        self.replaces = replaces
        self.issued_by = actor
        self.revoked = False
        self.revoked_at: datetime | None = None
        self.revoked_by: str | None = None
        self.replaced_by: UUID | None = None

    @classmethod
    def issue(
        cls,
        *,
        key_id: UUID,
        principal: str,
        role: Role,
        secret_hash: str,
        bot_id: UUID | None,
        cause: Cause,
        at: datetime,
        name: str | None = None,
        expires_at: datetime | None = None,
        replaces: UUID | None = None,
    ) -> ApiKey:
        check_short_name("principal", principal)
        check_short_name("key name", name or principal)
        if bot_id is not None and role is not Role.BOT:
            raise InvalidInput("only a bot key names a bot")
        return cls._open(
            cls.Issued,
            id=key_id,
            cause=cause,
            at=at,
            principal=principal,
            role=str(role),
            secret_hash=secret_hash,
            bot_id=bot_id,
            name=name or principal,
            expires_at=check_expiry(expires_at, at),
            replaces=replaces,
        )

    def revoke(self, cause: Cause, at: datetime, *, replaced_by: UUID | None = None) -> None:
        if self.revoked:
            raise InvalidTransition("key is already revoked", key_id=self.id)
        self._record(self.Revoked, cause, at, replaced_by=replaced_by)

    def state(self, now: datetime) -> KeyState:
        return key_state(self.revoked, self.expires_at, now)

    def usable(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)

    def check_rotatable(self, at: datetime) -> None:
        """A rotation replaces a key that still works: a revoked or expired one has
        nothing to hand over (issue a new key instead)."""
        state = self.state(at)
        if state is not KeyState.ACTIVE:
            raise InvalidTransition(f"key is {state}: issue a new key instead", key_id=self.id)
        if self.bot_id is not None:
            raise InvalidTransition(
                "a bot's own key is rotated by registering the bot again", key_id=self.id
            )


def key_state(revoked: bool, expires_at: datetime | None, now: datetime) -> KeyState:
    if revoked:
        return KeyState.REVOKED
    if expires_at is not None and expires_at <= now:
        return KeyState.EXPIRED
    return KeyState.ACTIVE


def check_expiry(expires_at: datetime | None, at: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.utcoffset() is None:
        raise InvalidInput("an expiry must carry a time zone offset")
    if expires_at <= at:
        raise InvalidInput("an expiry must be in the future")
    if expires_at - at > MAX_LIFETIME:
        raise InvalidInput(f"an expiry must be at most {MAX_LIFETIME.days} days ahead")
    return expires_at.astimezone(UTC)


KEY_PREFIX = "apk_"


def format_token(key_id: UUID, secret: str) -> str:
    """The string a holder presents: the key's id (to find it) and its secret (to prove it)."""
    return tokens.join(KEY_PREFIX, key_id, secret)


def parse_token(token: str) -> tuple[UUID, str] | None:
    return tokens.split(KEY_PREFIX, token)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(key: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))
