"""The postman: picks recipients for messages and tends the ones in the mailbox.

Sending: a message to a bot goes to that bot (lost or not: it is held for it until its
TTL; one that does not take messages is refused); to a capability, to the live, ready bot
with that capability that takes messages and has the fewest unfinished messages (ties by
id); to a pool, to every live bot of the pool that takes messages. Each round
(one engine leads it): messages past their TTL are dead-lettered, and messages sent to a
capability whose recipient is gone (lost or deregistered), or that found none, are routed
to a capable bot that is live now.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from domain.cause import Cause
from domain.hive import Committed, Hive, MessageSpec, utc_now
from domain.messages import Message
from runtime.live import LiveIndex
from runtime.mailbox import Mailbox

log = logging.getLogger(__name__)

ROUND_LIMIT = 1000


class Postman:
    name = "postman"

    def __init__(
        self,
        hive: Hive,
        index: LiveIndex,
        mailbox: Mailbox,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.hive = hive
        self.index = index
        self.mailbox = mailbox
        self.clock = clock
        self.wake = threading.Event()  # set by news for it; each round clears it first
        self._rounds = itertools.count(1)

    def send(self, spec: MessageSpec, cause: Cause) -> Committed[Message]:
        return self.hive.messages.send(spec, self.recipients(spec), cause)

    def recipients(self, spec: MessageSpec) -> list[UUID]:
        if spec.to_bot is not None:
            return [spec.to_bot]
        if spec.to_pool is not None:
            return sorted(b.bot_id for b, _ in self.index.bots_of(spec.to_pool) if b.takes_messages)
        assert spec.to_capability is not None
        chosen = self.capable(spec.to_capability)
        return [] if chosen is None else [chosen]

    def capable(self, capability: str, *, besides: UUID | None = None) -> UUID | None:
        """The ready bot with ``capability`` that takes messages and has the fewest
        unfinished ones."""
        candidates = [
            b.bot_id
            for b in self.index.readers()
            if capability in b.capabilities and b.bot_id != besides
        ]
        return min(candidates, key=lambda b: (self.mailbox.load_of(b), b), default=None)

    def run_once(self) -> int:
        """One round; returns how many messages it dead-lettered or routed."""
        self.wake.clear()
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        done = 0
        expired = self.mailbox.expired(self.clock(), ROUND_LIMIT)
        if expired:
            done += len(self.hive.messages.expire(expired, cause).items)
        live = set(self.index.live_bots())
        by_choice: defaultdict[UUID, dict[UUID, UUID]] = defaultdict(dict)
        for message_id, capability in self.mailbox.to_route(live, ROUND_LIMIT):
            chosen = self.capable(capability)
            if chosen is not None:
                by_choice[chosen][message_id] = chosen
        for choices in by_choice.values():
            routed = self.hive.messages.route(choices, "capability: recipient gone", cause)
            done += len(routed.items)
        if done:
            log.info("messages tended", extra={"action": "messages_tended", "count": done})
        return done

    def wait_hint(self) -> float | None:
        due = self.mailbox.next_wake()
        return None if due is None else (due - self.clock()).total_seconds()
