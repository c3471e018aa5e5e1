"""The keys room: API keys issued (the secret shown once, only its hash kept) and revoked."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.cause import Cause
from domain.hive.kernel import Committed, Kernel
from domain.keys import ApiKey, Role, format_token, hash_secret


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown once; only its hash is stored


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class KeyCommands:
    def __init__(self, kernel: Kernel, new_secret: Callable[[], str] = new_secret) -> None:
        self.kernel = kernel
        self.new_secret = new_secret

    def issue(self, principal: str, role: Role, cause: Cause) -> IssuedKey:
        issued = self.new_key(principal, role, None, cause, self.kernel.clock())
        self.kernel.save([issued.key])
        return issued

    def revoke(self, key_id: UUID, cause: Cause) -> Committed[ApiKey]:
        return self.kernel.change(ApiKey, [key_id], lambda k, at: k.revoke(cause, at))

    def new_key(
        self, principal: str, role: Role, bot_id: UUID | None, cause: Cause, at: datetime
    ) -> IssuedKey:
        """A key not yet saved: the caller saves it with whatever it belongs to."""
        key_id, secret = self.kernel.new_id(), self.new_secret()
        key = ApiKey.issue(
            key_id=key_id,
            principal=principal,
            role=role,
            secret_hash=hash_secret(secret),
            bot_id=bot_id,
            cause=cause,
            at=at,
        )
        return IssuedKey(key, format_token(key_id, secret))
