"""The keys room: API keys issued (the secret shown once, only its hash kept), revoked and
rotated."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cause import Cause
from domain.errors import NotFound
from domain.hive.kernel import Committed, Kernel
from domain.keys import ApiKey, Role, format_token, hash_secret


@dataclass
class IssuedKey:
    key: ApiKey
    token: str  # shown once; only its hash is stored
    position: int | None = None  # where its save put it in the log (None: not saved yet)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class KeyCommands:
    def __init__(self, kernel: Kernel, new_secret: Callable[[], str] = new_secret) -> None:
        self.kernel = kernel
        self.new_secret = new_secret

    def issue(
        self,
        name: str,
        role: Role,
        cause: Cause,
        *,
        expires_at: datetime | None = None,
        principal: str | None = None,
    ) -> IssuedKey:
        """A new key named ``name``, speaking for ``principal`` (default: its name)."""
        issued = self.new_key(
            principal or name,
            role,
            None,
            cause,
            self.kernel.clock(),
            name=name,
            expires_at=expires_at,
        )
        recorded = self.kernel.save([issued.key])
        issued.position = max((p for p, _ in recorded), default=None)
        return issued

    def revoke(self, key_id: UUID, cause: Cause) -> Committed[ApiKey]:
        return self.kernel.change(ApiKey, [key_id], lambda k, at: k.revoke(cause, at))

    def rotate(self, key_id: UUID, cause: Cause) -> tuple[IssuedKey, ApiKey]:
        """A new key with the old one's name, principal, role and expiry; the old one is
        revoked in the same save (no grace period: a rotation is what one does with a key
        that may have leaked; to move clients over at leisure, issue a second key and
        revoke the first once they have moved)."""
        made: list[tuple[IssuedKey, ApiKey]] = []

        def rotate(found: dict[UUID, Any], at: datetime) -> list[Any]:
            old = found.get(key_id)
            if not isinstance(old, ApiKey):
                raise NotFound(f"no key {key_id}", id=key_id)
            old.check_rotatable(at)
            issued = self.new_key(
                old.principal,
                old.role,
                None,
                cause,
                at,
                name=old.name,
                expires_at=old.expires_at,
                replaces=old.id,
            )
            old.revoke(cause, at, replaced_by=issued.key.id)
            made.append((issued, old))
            return [issued.key, old]

        committed = self.kernel.execute([key_id], rotate, fresh=True)
        issued, old = made[-1]
        issued.position = committed.position
        return issued, old

    def new_key(
        self,
        principal: str,
        role: Role,
        bot_id: UUID | None,
        cause: Cause,
        at: datetime,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        replaces: UUID | None = None,
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
            name=name,
            expires_at=expires_at,
            replaces=replaces,
        )
        return IssuedKey(key, format_token(key_id, secret))
