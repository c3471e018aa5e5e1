"""Message bodies: sending, the message as it stands (with its history), claims and acks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import Field, JsonValue, model_validator

from api.schemas.common import (
    Input,
    JsonDocument,
    Model,
    ShortName,
    batch_of,
    canonical_json,
    check_batch,
)
from api.settings import Settings
from domain.hive import MessageSpec
from domain.messages import MAX_TTL_S, Message
from projections.message_reads import MessageRow

Conversation = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="a short name or a UUID: messages of one conversation keep their order",
    ),
]


class MessageCreate(Input):
    to_bot: UUID | None = None
    to_capability: ShortName | None = None
    to_pool: ShortName | None = None
    body: JsonDocument
    conversation: Conversation | None = None
    task_id: UUID | None = None
    ttl_s: Annotated[int, Field(strict=True, ge=1, le=MAX_TTL_S)] = 3600

    @model_validator(mode="after")
    def _one_address(self) -> MessageCreate:
        if sum(x is not None for x in (self.to_bot, self.to_capability, self.to_pool)) != 1:
            raise ValueError("give exactly one of to_bot, to_capability, to_pool")
        return self

    def to_spec(self, max_bytes: int) -> MessageSpec:
        return MessageSpec(
            body=canonical_json(self.body, limit=max_bytes, loc=("body", "body")),
            to_bot=self.to_bot,
            to_capability=self.to_capability,
            to_pool=self.to_pool,
            conversation=self.conversation,
            task_id=self.task_id,
            ttl_s=self.ttl_s,
        )


class MessageEvent(Model):
    type: str
    at: datetime
    actor: str
    detail: dict[str, Any]

    @classmethod
    def from_event(cls, e: Any) -> MessageEvent:
        skip = {"originator_id", "originator_version", "timestamp", "actor", "request_id", "body"}
        detail = {k: v for k, v in vars(e).items() if k not in skip and not k.startswith("_")}
        return cls(type=type(e).__name__, at=e.timestamp, actor=e.actor, detail=detail)


class MessagePublic(Model):
    id: UUID
    sender: str
    to_bot: UUID | None
    to_capability: str | None
    to_pool: str | None
    conversation: str | None
    seq: int = Field(description="its place in its conversation (0: none)")
    task_id: UUID | None
    body: JsonValue
    state: str
    bot_id: UUID | None = Field(description="the recipient, once routed")
    attempt: int = Field(description="deliveries so far; an ack names the latest")
    dead_reason: str | None
    sent_at: datetime
    expires_at: datetime
    history: list[MessageEvent] | None = None

    @classmethod
    def from_message(cls, m: Message, history: list[Any] | None = None) -> MessagePublic:
        return cls(
            id=m.id,
            sender=m.sender,
            to_bot=m.to_bot,
            to_capability=m.to_capability,
            to_pool=m.to_pool,
            conversation=m.conversation,
            seq=m.seq,
            task_id=m.task_id,
            body=orjson.loads(m.body),
            state=str(m.state),
            bot_id=m.bot_id,
            attempt=m.attempt,
            dead_reason=m.dead_reason,
            sent_at=m.sent_at,
            expires_at=m.expires_at,
            history=None if history is None else [MessageEvent.from_event(e) for e in history],
        )

    @classmethod
    def from_row(cls, r: MessageRow) -> MessagePublic:
        return cls(
            id=r.message_id,
            sender=r.sender,
            to_bot=r.to_bot,
            to_capability=r.to_capability,
            to_pool=r.to_pool,
            conversation=r.conversation,
            seq=r.conversation_seq,
            task_id=r.task_id,
            body=r.body,
            state=r.state,
            bot_id=r.bot_id,
            attempt=r.attempt,
            dead_reason=r.dead_reason,
            sent_at=r.sent_at,
            expires_at=r.expires_at,
        )


class MessagesSent(Model):
    items: list[MessagePublic] = Field(description="one per recipient of a pool, else one")
    position: int


class MessageListQuery(Input):
    conversation: Conversation | None = Field(
        default=None, description="its messages in send order; without: the latest, newest first"
    )
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class MessagesPublic(Model):
    items: list[MessagePublic]
    next_cursor: str | None


class MessageClaimRequest(Input):
    max_messages: Annotated[int, Field(strict=True, ge=1, le=1000)] = 10
    wait_s: Annotated[float, Field(strict=True, ge=0, le=30)] = 0.0


class ClaimedMessage(Model):
    id: UUID
    sender: str
    conversation: str | None
    seq: int
    task_id: UUID | None
    body: JsonValue
    attempt: int = Field(description="name it in the ack")

    @classmethod
    def from_message(cls, m: Message) -> ClaimedMessage:
        return cls(
            id=m.id,
            sender=m.sender,
            conversation=m.conversation,
            seq=m.seq,
            task_id=m.task_id,
            body=orjson.loads(m.body),
            attempt=m.attempt,
        )


class MessageClaimResponse(Model):
    messages: list[ClaimedMessage]


class AckItem(Model):
    message_id: UUID
    attempt: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]


class AckItems(Input):
    messages: list[AckItem] = batch_of("acknowledgements")

    def to_attempts(self, settings: Settings) -> dict[UUID, int]:
        check_batch(len(self.messages), settings.max_batch, ("body", "messages"))
        return {a.message_id: a.attempt for a in self.messages}


class AckAccepted(Model):
    messages: list[UUID]
    position: int
