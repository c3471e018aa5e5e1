"""A bot: a worker process that registered with the hive and does tasks.

Liveness is soft state (heartbeats renew a lease row, they are not events); what the hive
decides from it is an event: ``Lost``. A lost bot never comes back under the same id: it
registers again and gets a new one, so nothing it held can be confused with new work.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import BotNotLive, InvalidInput
from domain.names import check_capabilities, check_short_name

MAX_CONCURRENCY = 10_000


class BotState(StrEnum):
    READY = "ready"
    LOST = "lost"
    DEREGISTERED = "deregistered"


class Bot(HiveAggregate):
    class Registered(HiveAggregate.Created):
        name: str
        capabilities: list[str]
        max_concurrency: int
        version_label: str

    class Lost(HiveAggregate.Event):
        reason: str

        def apply(self, bot: Bot) -> None:
            bot.state = BotState.LOST

    class Deregistered(HiveAggregate.Event):
        def apply(self, bot: Bot) -> None:
            bot.state = BotState.DEREGISTERED

    def __init__(
        self,
        name: str,
        capabilities: list[str],
        max_concurrency: int,
        version_label: str,
        actor: str,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.max_concurrency = max_concurrency
        self.version_label = version_label
        self.registered_by = actor
        self.state = BotState.READY

    @classmethod
    def register(
        cls,
        *,
        bot_id: UUID,
        name: str,
        capabilities: list[str],
        max_concurrency: int,
        version_label: str,
        cause: Cause,
        at: datetime,
    ) -> Bot:
        check_short_name("bot name", name)
        if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"max concurrency must be 1..{MAX_CONCURRENCY}")
        if not isinstance(version_label, str) or not 1 <= len(version_label) <= 64:
            raise InvalidInput("version label must be 1..64 characters")
        return cls._open(
            cls.Registered,
            id=bot_id,
            cause=cause,
            at=at,
            name=name,
            capabilities=check_capabilities(capabilities),
            max_concurrency=max_concurrency,
            version_label=version_label,
        )

    @property
    def is_live(self) -> bool:
        return self.state is BotState.READY

    def check_live(self) -> None:
        if not self.is_live:
            raise BotNotLive(bot_id=self.id, state=str(self.state))

    def mark_lost(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.is_live:
            self._record(self.Lost, cause, at, reason=reason)

    def deregister(self, cause: Cause, at: datetime) -> None:
        if self.state is not BotState.DEREGISTERED:
            self._record(self.Deregistered, cause, at)
