"""The message long-poll: a bot asks for its messages and waits until there are some.

It waits on a doorbell the mailbox rings when a message is routed to the bot, or when the
message before one of its messages in a conversation finishes. What the mailbox offers is
handed out by the Hive (``deliver_messages``), which decides again from the log: each
message comes with its delivery attempt, which the bot's acknowledgement must name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from uuid import UUID

from starlette.concurrency import run_in_threadpool

from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.messages import Message
from runtime.doorbell import Doorbell
from runtime.mailbox import Mailbox


class MessageBoard:
    def __init__(
        self,
        hive: Hive,
        mailbox: Mailbox,
        visibility_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.hive = hive
        self.mailbox = mailbox
        self.visibility_s = visibility_s
        self.clock = clock
        self.doorbell = Doorbell()
        mailbox.listeners.append(self.doorbell.ring)

    def close(self) -> None:
        self.doorbell.close()

    @property
    def closing(self) -> bool:
        """Shutting down: a stream of messages ends rather than poll again."""
        return self.doorbell.closing

    async def claim(
        self, bot_id: UUID, max_messages: int, wait_s: float, cause: Cause
    ) -> list[Message]:
        return await self.doorbell.poll(
            bot_id, wait_s, partial(self._deliver, bot_id, max_messages, cause)
        )

    async def _deliver(self, bot_id: UUID, limit: int, cause: Cause) -> list[Message]:
        offered = self.mailbox.for_bot(bot_id, self.clock(), limit)
        if not offered:
            return []
        committed = await run_in_threadpool(
            self.hive.messages.deliver, bot_id, offered, self.visibility_s, cause
        )
        return sorted(committed.items, key=lambda m: offered.index(m.id))
