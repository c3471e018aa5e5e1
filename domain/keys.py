"""An API key: who may talk to the hive, and in which role.

Only a hash of the secret is stored; the secret is shown once, when the key is issued.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.names import check_short_name


class Role(StrEnum):
    ADMIN = "admin"
    CLIENT = "client"
    BOT = "bot"


class ApiKey(HiveAggregate):
    class Issued(HiveAggregate.Created):
        principal: str
        role: str
        secret_hash: str
        bot_id: UUID | None

    class Revoked(HiveAggregate.Event):
        def apply(self, key: ApiKey) -> None:
            key.revoked = True

    def __init__(
        self, principal: str, role: str, secret_hash: str, bot_id: UUID | None, actor: str
    ) -> None:
        self.principal = principal
        self.role = Role(role)
        self.secret_hash = secret_hash
        self.bot_id = bot_id
        self.issued_by = actor
        self.revoked = False

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
    ) -> ApiKey:
        check_short_name("principal", principal)
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
        )

    def revoke(self, cause: Cause, at: datetime) -> None:
        if self.revoked:
            raise InvalidTransition("key is already revoked", key_id=self.id)
        self._record(self.Revoked, cause, at)


KEY_PREFIX = "apk_"


def format_token(key_id: UUID, secret: str) -> str:
    """The string a holder presents: the key's id (to find it) and its secret (to prove it)."""
    return f"{KEY_PREFIX}{key_id.hex}_{secret}"


def parse_token(token: str) -> tuple[UUID, str] | None:
    if not token.startswith(KEY_PREFIX):
        return None
    key_hex, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_hex) != 32 or not secret:
        return None
    try:
        return UUID(hex=key_hex), secret
    except ValueError:
        return None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(key: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))
