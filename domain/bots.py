"""A bot: a worker process that registered with the hive and does tasks.

Liveness is soft state (heartbeats renew a lease row, they are not events); what the hive
decides from it is an event: ``Lost``. A lost bot never comes back under the same id: it
registers again and gets a new one, so nothing it held can be confused with new work.

A live bot is ``ready`` (gets new work), ``draining`` (finishes what it holds, gets nothing
new, then stops: how the autoscaler shrinks a pool) or ``quarantined`` (gets nothing new
until an operator reinstates it). A bot started by the autoscaler names its ``pool`` and
the ``launch_id`` it was started under, so its registration closes that launch.

A bot says when it registers whether it ``takes_messages`` (claims and acknowledges
them): only such a bot is a recipient of messages. Registrations recorded before it could
say (``Registered`` v1, v2) take them: every bot was a recipient then, and an old log
keeps meaning that.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import BotNotLive, InvalidInput, InvalidTransition
from domain.names import check_capabilities, check_short_name, check_text

MAX_CONCURRENCY = 10_000


class BotState(StrEnum):
    READY = "ready"
    DRAINING = "draining"
    QUARANTINED = "quarantined"
    LOST = "lost"
    DEREGISTERED = "deregistered"

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATES


LIVE_STATES = frozenset({BotState.READY, BotState.DRAINING, BotState.QUARANTINED})


class Bot(HiveAggregate):
    class Registered(HiveAggregate.Created):
        class_version = 3
        name: str
        capabilities: list[str]
        max_concurrency: int
        version_label: str
        pool: str | None
        launch_id: UUID | None
        takes_messages: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["pool"] = None
            state["launch_id"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["takes_messages"] = True  # every bot was a recipient of messages then

    class Draining(HiveAggregate.Event):
        reason: str

        def apply(self, bot: Bot) -> None:
            bot.state = BotState.DRAINING

    class Quarantined(HiveAggregate.Event):
        reason: str

        def apply(self, bot: Bot) -> None:
            bot.state = BotState.QUARANTINED

    class Reinstated(HiveAggregate.Event):
        def apply(self, bot: Bot) -> None:
            bot.state = BotState.READY

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
        pool: str | None,
        launch_id: UUID | None,
        takes_messages: bool,
        actor: str,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.max_concurrency = max_concurrency
        self.version_label = version_label
        self.pool = pool
        self.launch_id = launch_id
        self.takes_messages = takes_messages
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
        pool: str | None = None,
        launch_id: UUID | None = None,
        takes_messages: bool = True,
    ) -> Bot:
        check_short_name("bot name", name)
        if pool is not None:
            check_short_name("pool", pool)
        if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"max concurrency must be 1..{MAX_CONCURRENCY}")
        if not isinstance(version_label, str) or not 1 <= len(version_label) <= 64:
            raise InvalidInput("version label must be 1..64 characters")
        if not isinstance(takes_messages, bool):
            raise InvalidInput("takes_messages must be true or false")
        return cls._open(
            cls.Registered,
            id=bot_id,
            cause=cause,
            at=at,
            name=name,
            capabilities=check_capabilities(capabilities),
            max_concurrency=max_concurrency,
            version_label=version_label,
            pool=pool,
            launch_id=launch_id,
            takes_messages=takes_messages,
        )

    @property
    def is_live(self) -> bool:
        return self.state.is_live

    @property
    def accepts_work(self) -> bool:
        return self.state is BotState.READY

    def check_live(self) -> None:
        if not self.is_live:
            raise BotNotLive(bot_id=self.id, state=str(self.state))

    def drain(self, reason: str, cause: Cause, at: datetime) -> None:
        """No new work from now on; what it holds it finishes. Repeating it changes nothing."""
        self.check_live()
        if self.state is not BotState.DRAINING:
            self._record(self.Draining, cause, at, reason=check_text("reason", reason))

    def quarantine(self, reason: str, cause: Cause, at: datetime) -> None:
        self.check_live()
        if self.state is BotState.DRAINING:
            raise InvalidTransition("bot is draining; it will stop on its own", bot_id=self.id)
        if self.state is not BotState.QUARANTINED:
            self._record(self.Quarantined, cause, at, reason=check_text("reason", reason))

    def reinstate(self, cause: Cause, at: datetime) -> None:
        self.check_live()
        if self.state is not BotState.QUARANTINED:
            raise InvalidTransition(f"bot is {self.state}, not quarantined", bot_id=self.id)
        self._record(self.Reinstated, cause, at)

    def mark_lost(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.is_live:
            self._record(self.Lost, cause, at, reason=reason)

    def deregister(self, cause: Cause, at: datetime) -> None:
        if self.state is not BotState.DEREGISTERED:
            self._record(self.Deregistered, cause, at)
