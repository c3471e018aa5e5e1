"""Key bodies: a key to issue in, a key as the API shows it out (never its secret or hash)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from api.schemas.common import Input, Instant, Model, ShortName
from domain.hive import IssuedKey
from domain.keys import MAX_LIFETIME, ApiKey, KeyState, Role, key_state
from projections.key_reads import KeyFilter, KeyRow


class KeyCreate(Input):
    role: Role = Field(
        description="admin: everything; client: tasks, schedules, messages; "
        "bot: an enrolment key (registers bots)"
    )
    name: ShortName = Field(description="what the key is for; rotation keeps it")
    principal: ShortName | None = Field(
        default=None, description="who its events are stamped with (default: its name)"
    )
    expires_at: Instant | None = Field(default=None, description="refused from then on")
    expires_in_s: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=int(MAX_LIFETIME.total_seconds()),
        description="or: refused this many seconds after it is issued",
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> Self:
        if self.expires_at is not None and self.expires_in_s is not None:
            raise ValueError("give expires_at or expires_in_s, not both")
        return self

    def expiry(self, now: datetime) -> datetime | None:
        if self.expires_in_s is not None:
            return now + timedelta(seconds=self.expires_in_s)
        return self.expires_at


class KeyListQuery(Input):
    role: Role | None = None
    name: ShortName | None = None
    bot_id: UUID | None = Field(default=None, description="that bot's own key")
    include_revoked: bool = False
    include_expired: bool = False
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def filter(self) -> KeyFilter:
        return KeyFilter(
            role=None if self.role is None else str(self.role),
            name=self.name,
            bot_id=self.bot_id,
            include_revoked=self.include_revoked,
            include_expired=self.include_expired,
        )


class KeyPublic(Model):
    id: UUID
    name: str
    principal: str = Field(description="who the events it causes are stamped with")
    role: Role
    bot_id: UUID | None = Field(default=None, description="set for a bot's own key")
    state: KeyState
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = Field(
        default=None, description="as noted by the API processes (to within a few seconds)"
    )
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    replaces: UUID | None = Field(default=None, description="the key it was issued to replace")
    replaced_by: UUID | None = Field(default=None, description="the key issued in its place")

    @classmethod
    def of(cls, key: ApiKey, now: datetime, last_used_at: datetime | None) -> KeyPublic:
        return cls(
            id=key.id,
            name=key.name,
            principal=key.principal,
            role=key.role,
            bot_id=key.bot_id,
            state=key.state(now),
            created_by=key.issued_by,
            created_at=key.created_on,
            expires_at=key.expires_at,
            last_used_at=last_used_at,
            revoked_at=key.revoked_at,
            revoked_by=key.revoked_by,
            replaces=key.replaces,
            replaced_by=key.replaced_by,
        )

    @classmethod
    def from_row(cls, row: KeyRow, now: datetime) -> KeyPublic:
        return cls(
            id=row.key_id,
            name=row.name,
            principal=row.principal,
            role=Role(row.role),
            bot_id=row.bot_id,
            state=key_state(row.revoked_at is not None, row.expires_at, now),
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
            replaces=row.replaces,
            replaced_by=row.replaced_by,
        )


class KeyIssued(KeyPublic):
    token: str = Field(description="the key itself: shown this once, never again")
    position: int = Field(description="the log position of its issue")

    @classmethod
    def of_issued(cls, issued: IssuedKey, now: datetime) -> KeyIssued:
        public = KeyPublic.of(issued.key, now, None)
        return cls(**public.model_dump(), token=issued.token, position=issued.position or 0)


class KeysPublic(Model):
    items: list[KeyPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")
