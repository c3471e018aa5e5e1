"""The keys room: API keys issued (the secret shown once, only its hash kept) and revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.cause import Cause
from domain.hive.commands import Commands, Committed
from domain.keys import ApiKey, Role, format_token, hash_secret


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown once; only its hash is stored


class KeyCommands(Commands):
    def issue_key(self, principal: str, role: Role, cause: Cause) -> IssuedKey:
        issued = self._new_key(principal, role, None, cause, self.clock())
        self._save([issued.key])
        return issued

    def revoke_key(self, key_id: UUID, cause: Cause) -> Committed[ApiKey]:
        return self._change(ApiKey, [key_id], lambda k, at: k.revoke(cause, at))

    def _new_key(
        self, principal: str, role: Role, bot_id: UUID | None, cause: Cause, at: datetime
    ) -> IssuedKey:
        key_id, secret = self.new_id(), self.new_secret()
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
