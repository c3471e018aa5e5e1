"""A message: a body sent to a bot, handed out by its claims until the bot acknowledges it.

Life: waiting (sent, no recipient yet) -> routed -> delivered -> acknowledged, and dead
(``DeadLettered`` with the reason) from any state before acknowledged. A message is
addressed to a bot by id, to a capability (the hive picks a live bot that has it) or to a
pool (fanned out at send time: one message per live bot of the pool, each addressed to
that bot, naming the pool).

Delivery is at least once: each hand-out is a new ``attempt`` with a visibility deadline;
past it the message may be handed out again, and an acknowledgement must name the latest
attempt (a fencing token), so a late ack of an earlier hand-out is refused.

Order: a message that belongs to a conversation names the message sent before it to the
same address in that conversation (``after``); the hive does not hand it out before that
one is acknowledged or dead. The ``Conversation`` aggregate numbers them, so two concurrent
senders collide on its version instead of both claiming the same place.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotYourMessage, StaleDelivery
from domain.names import check_json_text, check_short_name, check_text

MAX_TTL_S = 7 * 24 * 3600
CONVERSATION_NAMESPACE = UUID("0b6f8a52-3c1e-4f57-9d2a-7e4c1b9a5d30")


class MessageState(StrEnum):
    WAITING = "waiting"
    ROUTED = "routed"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    DEAD = "dead"

    @property
    def is_final(self) -> bool:
        return self in (MessageState.ACKNOWLEDGED, MessageState.DEAD)


class Message(HiveAggregate):
    class Sent(HiveAggregate.Created):
        to_bot: UUID | None
        to_capability: str | None
        to_pool: str | None  # a fan-out copy: also addressed to one bot of the pool
        conversation: str | None
        seq: int  # its place in the conversation (0: none)
        after: UUID | None  # the message before it in the conversation, to the same address
        task_id: UUID | None
        body: str  # canonical JSON text, kept verbatim
        ttl_s: int

    class Routed(HiveAggregate.Event):
        bot_id: UUID
        why: str

        def apply(self, message: Message) -> None:
            message.state = MessageState.ROUTED
            message.bot_id = self.bot_id

    class Delivered(HiveAggregate.Event):
        bot_id: UUID
        attempt: int
        visible_until: datetime

        def apply(self, message: Message) -> None:
            message.state = MessageState.DELIVERED
            message.attempt = self.attempt
            message.visible_until = self.visible_until

    class Acknowledged(HiveAggregate.Event):
        bot_id: UUID
        attempt: int

        def apply(self, message: Message) -> None:
            message.state = MessageState.ACKNOWLEDGED

    class DeadLettered(HiveAggregate.Event):
        reason: str

        def apply(self, message: Message) -> None:
            message.state = MessageState.DEAD
            message.dead_reason = self.reason

    def __init__(
        self,
        to_bot: UUID | None,
        to_capability: str | None,
        to_pool: str | None,
        conversation: str | None,
        seq: int,
        after: UUID | None,
        task_id: UUID | None,
        body: str,
        ttl_s: int,
        actor: str,
    ) -> None:
        self.to_bot = to_bot
        self.to_capability = to_capability
        self.to_pool = to_pool
        self.conversation = conversation
        self.seq = seq
        self.after = after
        self.task_id = task_id
        self.body = body
        self.ttl_s = ttl_s
        self.sender = actor
        self.sent_at: datetime = self.created_on
        self.state = MessageState.WAITING
        self.bot_id: UUID | None = None
        self.attempt = 0
        self.visible_until: datetime | None = None
        self.dead_reason: str | None = None

    @property
    def expires_at(self) -> datetime:
        return self.sent_at + timedelta(seconds=self.ttl_s)

    # -- commands ---------------------------------------------------------------------

    @classmethod
    def send(
        cls,
        *,
        message_id: UUID,
        to_bot: UUID | None,
        to_capability: str | None,
        to_pool: str | None,
        conversation: str | None,
        seq: int,
        after: UUID | None,
        task_id: UUID | None,
        body: str,
        ttl_s: int,
        cause: Cause,
        at: datetime,
    ) -> Message:
        check_address(to_bot, to_capability, to_pool)
        if not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
            raise InvalidInput(f"ttl_s must be 1..{MAX_TTL_S}")
        if conversation is not None:
            check_conversation(conversation)
        return cls._open(
            cls.Sent,
            id=message_id,
            cause=cause,
            at=at,
            to_bot=to_bot,
            to_capability=to_capability,
            to_pool=to_pool,
            conversation=conversation,
            seq=seq,
            after=after,
            task_id=task_id,
            body=check_json_text("body", body),
            ttl_s=ttl_s,
        )

    def route(self, bot_id: UUID, why: str, cause: Cause, at: datetime) -> None:
        """Give it a recipient: its addressee, or a capable bot (again, when the one chosen
        before was lost). Only a message addressed by capability ever changes recipient."""
        if self.state.is_final:
            raise InvalidTransition(f"message is {self.state}", message_id=self.id)
        if self.bot_id == bot_id:
            return
        if self.bot_id is not None and self.to_capability is None:
            raise InvalidTransition("only a message sent to a capability is re-routed")
        self._record(self.Routed, cause, at, bot_id=bot_id, why=check_text("why", why))

    def deliverable(self, bot_id: UUID, at: datetime) -> bool:
        """Whether a claim of ``bot_id`` may have it now (its predecessor aside)."""
        if self.bot_id != bot_id or at >= self.expires_at:
            return False
        if self.state is MessageState.ROUTED:
            return True
        return self.state is MessageState.DELIVERED and at >= self._visible_until()

    def deliver(self, bot_id: UUID, visibility_s: float, cause: Cause, at: datetime) -> None:
        if not self.deliverable(bot_id, at):
            raise InvalidTransition(f"message is {self.state}, not deliverable to that bot")
        self._record(
            self.Delivered,
            cause,
            at,
            bot_id=bot_id,
            attempt=self.attempt + 1,
            visible_until=at + timedelta(seconds=visibility_s),
        )

    def acknowledge(self, bot_id: UUID, attempt: int, cause: Cause, at: datetime) -> None:
        if self.bot_id != bot_id:
            raise NotYourMessage(message_id=self.id, state=str(self.state))
        if attempt != self.attempt:
            raise StaleDelivery(message_id=self.id, given=attempt, current=self.attempt)
        if self.state is MessageState.ACKNOWLEDGED:
            return  # a repeated ack of the same delivery changes nothing
        if self.state is not MessageState.DELIVERED:
            raise InvalidTransition(f"message is {self.state}, not delivered")
        self._record(self.Acknowledged, cause, at, bot_id=bot_id, attempt=attempt)

    def dead_letter(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.state.is_final:
            raise InvalidTransition(f"message is already {self.state}", message_id=self.id)
        self._record(self.DeadLettered, cause, at, reason=check_text("reason", reason))

    def expire(self, cause: Cause, at: datetime) -> None:
        """Dead once its TTL has passed unacknowledged; a no-op before then, or once final."""
        if not self.state.is_final and at >= self.expires_at:
            reason = "expired" if self.bot_id is not None else "undeliverable: no bot took it"
            self._record(self.DeadLettered, cause, at, reason=reason)

    def _visible_until(self) -> datetime:
        assert self.visible_until is not None  # set by every delivery
        return self.visible_until


class Conversation(HiveAggregate):
    """One conversation's messages to one address, in send order: who comes next."""

    class Opened(HiveAggregate.Created):
        name: str
        address: str

    class Appended(HiveAggregate.Event):
        message_id: UUID
        seq: int

        def apply(self, conversation: Conversation) -> None:
            conversation.last = self.message_id
            conversation.seq = self.seq

    def __init__(self, name: str, address: str, actor: str) -> None:
        self.name = name
        self.address = address
        self.last: UUID | None = None
        self.seq = 0

    @classmethod
    def open(cls, name: str, address: str, cause: Cause, at: datetime) -> Conversation:
        return cls._open(
            cls.Opened,
            id=conversation_id(name, address),
            cause=cause,
            at=at,
            name=name,
            address=address,
        )

    def append(self, message_id: UUID, cause: Cause, at: datetime) -> tuple[int, UUID | None]:
        """Its place and the message before it."""
        before = self.last
        self._record(self.Appended, cause, at, message_id=message_id, seq=self.seq + 1)
        return self.seq, before


def conversation_id(name: str, address: str) -> UUID:
    return uuid5(CONVERSATION_NAMESPACE, f"{name}\n{address}")


def check_address(to_bot: UUID | None, to_capability: str | None, to_pool: str | None) -> None:
    if to_pool is not None:
        check_short_name("pool", to_pool)
        if to_bot is None or to_capability is not None:
            raise InvalidInput("a pool's message is fanned out to its bots, one each")
        return
    if (to_bot is None) == (to_capability is None):
        raise InvalidInput("a message goes to exactly one of: a bot, a capability, a pool")
    if to_capability is not None:
        check_short_name("capability", to_capability)


def check_conversation(name: str) -> str:
    """A conversation is a short name or a UUID (in its canonical text form)."""
    try:
        if str(UUID(name)) == name:
            return name
    except ValueError:
        pass
    return check_short_name("conversation", name)
