"""The messages room: send (routed at once, or fanned out to a pool), route, deliver in
conversation order, acknowledge, expire."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.errors import NotFound, Undeliverable
from domain.hive.kernel import Committed, Kernel
from domain.messages import Conversation, Message, conversation_id


@dataclass(frozen=True)
class MessageSpec:
    """What a sender asks for; exactly one of ``to_bot``, ``to_capability``, ``to_pool``."""

    body: str  # canonical JSON text
    to_bot: UUID | None = None
    to_capability: str | None = None
    to_pool: str | None = None
    conversation: str | None = None
    task_id: UUID | None = None
    ttl_s: int = 3600


class MessageCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def send(
        self, spec: MessageSpec, recipients: Sequence[UUID], cause: Cause
    ) -> Committed[Message]:
        """Send, and route at once to ``recipients`` (the caller's pick from what is live):
        the addressee itself, a capable bot (none: it waits for one), or every live bot of
        the pool (one message each; none: refused as undeliverable). Only bots that take
        messages are recipients: one addressed by id that does not is refused too."""
        if spec.to_pool is not None and not recipients:
            raise Undeliverable(
                f"pool {spec.to_pool} has no live bot that takes messages", pool=spec.to_pool
            )
        copies = [spec.to_bot] if spec.to_pool is None else list(recipients)
        ids = [self.kernel.new_id() for _ in copies]
        name = spec.conversation
        conversations = (
            [conversation_id(name, _address(spec, b)) for b in copies] if name is not None else []
        )
        # the addressee, or each recipient of a pool's copies: a deregistered one is dead at once
        bots = [b for b in copies if b is not None]

        def send(found: dict[UUID, Any], at: datetime) -> list[Any]:
            changed: list[Any] = []
            for n, (message_id, to_bot) in enumerate(zip(ids, copies, strict=True)):
                seq, after = 0, None
                if name is not None:
                    conv_id = conversations[n]
                    conv = found.get(conv_id) or Conversation.open(
                        name, _address(spec, to_bot), cause, at
                    )
                    found[conv_id] = conv
                    seq, after = conv.append(message_id, cause, at)
                    changed.append(conv)
                message = Message.send(
                    message_id=message_id,
                    to_bot=to_bot,
                    to_capability=spec.to_capability,
                    to_pool=spec.to_pool,
                    conversation=spec.conversation,
                    seq=seq,
                    after=after,
                    task_id=spec.task_id,
                    body=spec.body,
                    ttl_s=spec.ttl_s,
                    cause=cause,
                    at=at,
                )
                _route_new(message, found, recipients, cause, at)
                changed.append(message)
            return list({a.id: a for a in changed}.values())

        c = self.kernel.execute([*bots, *dict.fromkeys(conversations)], send, fresh=True)
        return Committed([a for a in c.items if isinstance(a, Message)], c.position, c.recorded)

    def route(self, choices: Mapping[UUID, UUID], why: str, cause: Cause) -> Committed[Message]:
        """Give messages sent to a capability a (new) recipient; final ones are left."""

        def route(m: Message, at: datetime) -> None:
            if not m.state.is_final:
                m.route(choices[m.id], why, cause, at)

        return self.kernel.change(Message, list(choices), route)

    def deliver(
        self, bot_id: UUID, message_ids: Sequence[UUID], visibility_s: float, cause: Cause
    ) -> Committed[Message]:
        """Hand out to ``bot_id`` those it may have now: routed to it, not in flight, not
        expired, and whose predecessor in their conversation is acknowledged or dead."""
        known = self.kernel.load_many(Message, message_ids, fresh=False)
        before = [m.after for m in known.values() if m.after is not None]  # never changes

        def deliver(found: dict[UUID, Any], at: datetime) -> list[Any]:
            out = []
            for i in message_ids:
                after = known[i].after if i in known else None
                m, prev = found.get(i), None if after is None else found.get(after)
                if not isinstance(m, Message) or not m.deliverable(bot_id, at):
                    continue
                if isinstance(prev, Message) and not prev.state.is_final:
                    continue
                m.deliver(bot_id, visibility_s, cause, at)
                out.append(m)
            return out

        return self.kernel.execute([*known, *before], deliver, fresh=True)

    def acknowledge(
        self, bot_id: UUID, attempts: Mapping[UUID, int], cause: Cause
    ) -> Committed[Message]:
        return self.kernel.change(
            Message,
            list(attempts),
            lambda m, at: m.acknowledge(bot_id, attempts[m.id], cause, at),
        )

    def expire(self, message_ids: Sequence[UUID], cause: Cause) -> Committed[Message]:
        """Dead-letter those whose TTL has passed; the others are left as they are."""
        return self.kernel.change(Message, list(message_ids), lambda m, at: m.expire(cause, at))


def _address(spec: MessageSpec, to_bot: UUID | None) -> str:
    """Whom order is kept for: each bot (a pool's fan-out too) or the capability."""
    return f"capability:{spec.to_capability}" if to_bot is None else f"bot:{to_bot}"


def _route_new(
    message: Message, found: dict[UUID, Any], recipients: Sequence[UUID], cause: Cause, at: datetime
) -> None:
    if message.to_bot is None:  # by capability: the caller's pick, if any
        if recipients:
            message.route(recipients[0], "capability", cause, at)
        return
    bot = found.get(message.to_bot)
    if message.to_pool is None and not isinstance(bot, Bot):
        raise NotFound(f"no bot {message.to_bot}", id=message.to_bot)
    if isinstance(bot, Bot) and bot.state is BotState.DEREGISTERED:
        message.dead_letter("undeliverable: the bot is deregistered", cause, at)
        return
    if isinstance(bot, Bot) and not bot.takes_messages:  # it would never read it
        raise Undeliverable(f"bot {bot.id} does not take messages", bot_id=bot.id)
    message.route(message.to_bot, "pool" if message.to_pool else "addressed", cause, at)
