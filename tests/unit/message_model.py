"""The Hive state machine's reference model of messages (``domain/messages.py``, written
again from the architecture's Messaging section): each message's state, recipient,
attempt and place in its conversation, and what each message command does to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.errors import HiveError, InvalidTransition, NotYourMessage, StaleDelivery
from domain.messages import Message, MessageState

MESSAGE_FIELDS = (
    "to_bot",
    "to_capability",
    "to_pool",
    "conversation",
    "seq",
    "after",
    "task_id",
    "body",
    "ttl_s",
    "sender",
    "sent_at",
    "state",
    "bot_id",
    "attempt",
    "visible_until",
    "dead_reason",
)
OPEN = frozenset({MessageState.WAITING, MessageState.ROUTED, MessageState.DELIVERED})


@dataclass(frozen=True)
class ModelMessage:
    to_bot: UUID | None
    to_capability: str | None
    to_pool: str | None
    conversation: str | None
    seq: int  # its place in the conversation (0: none)
    after: UUID | None  # the message before it in the conversation, to the same address
    body: str
    ttl_s: int
    sender: str
    sent_at: datetime
    task_id: UUID | None = None
    state: MessageState = MessageState.WAITING
    bot_id: UUID | None = None
    attempt: int = 0
    visible_until: datetime | None = None
    dead_reason: str | None = None

    @property
    def expires_at(self) -> datetime:
        return self.sent_at + timedelta(seconds=self.ttl_s)

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in MESSAGE_FIELDS}


def message_fields(message: Message) -> dict[str, Any]:
    return {k: getattr(message, k) for k in MESSAGE_FIELDS}


def address(to_bot: UUID | None, to_capability: str | None) -> str:
    """Whom a conversation's order is kept for: a bot (a pool's copy too) or a capability."""
    return f"capability:{to_capability}" if to_bot is None else f"bot:{to_bot}"


# What a command does to one message: the message afterwards, or the error that refuses it.
MessageOutcome = ModelMessage | type[HiveError]
MessageRule = Callable[[ModelMessage], MessageOutcome]


def deliverable(m: ModelMessage, bot_id: UUID, now: datetime) -> bool:
    """A claim of ``bot_id`` may have it now (its predecessor aside): routed to that bot,
    not in flight (or its visibility ran out), not past its TTL."""
    if m.bot_id != bot_id or now >= m.expires_at:
        return False
    if m.state is MessageState.ROUTED:
        return True
    until = m.visible_until
    return m.state is MessageState.DELIVERED and until is not None and now >= until


def hand_out(m: ModelMessage, visibility_s: float, now: datetime) -> ModelMessage:
    return replace(
        m,
        state=MessageState.DELIVERED,
        attempt=m.attempt + 1,
        visible_until=now + timedelta(seconds=visibility_s),
    )


def acknowledge(bot_id: UUID, attempt: int) -> MessageRule:
    def decide(m: ModelMessage) -> MessageOutcome:
        if m.bot_id != bot_id:
            return NotYourMessage
        if attempt != m.attempt:
            return StaleDelivery
        if m.state is MessageState.ACKNOWLEDGED:
            return m  # the same ack again changes nothing
        if m.state is not MessageState.DELIVERED:
            return InvalidTransition
        return replace(m, state=MessageState.ACKNOWLEDGED)

    return decide


def reroute(bot_id: UUID) -> MessageRule:
    """``route_messages``: final ones are left; only one sent to a capability changes hands."""

    def decide(m: ModelMessage) -> MessageOutcome:
        if m.state not in OPEN or m.bot_id == bot_id:
            return m
        if m.bot_id is not None and m.to_capability is None:
            return InvalidTransition
        return replace(m, state=MessageState.ROUTED, bot_id=bot_id)

    return decide


def expire_past_ttl(now: datetime) -> MessageRule:
    def decide(m: ModelMessage) -> MessageOutcome:
        if m.state not in OPEN or now < m.expires_at:
            return m
        reason = "expired" if m.bot_id is not None else "undeliverable: no bot took it"
        return replace(m, state=MessageState.DEAD, dead_reason=reason)

    return decide
