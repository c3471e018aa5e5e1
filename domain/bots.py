"""A bot: a worker process that registered with the hive and does tasks.

Liveness is soft state (heartbeats renew a lease row, they are not events); what the hive
decides from it is an event: ``Lost``. A lost bot never comes back under the same id: it
registers again and gets a new one, so nothing it held can be confused with new work.

A live bot is ``ready`` (gets new work), ``draining`` (finishes what it holds, gets nothing
new, then stops: how the autoscaler shrinks a pool), ``quarantined`` (gets nothing new
until it is reinstated) or ``probing`` (gets one task, a probe, whose end decides).

A bot is quarantined by an operator (until an operator reinstates it) or by its circuit
breaker (``domain/policies/breaker.py``), which records the evidence and a cooldown: when
the cooldown has passed, the breaker lets the bot probe (``Probing``); the probe's success
reinstates it, its failure quarantines it again for twice the cooldown (capped).
``Quarantined`` v1, from before the breaker, was always an operator's: no evidence, no
cooldown. A bot started by the autoscaler names its ``pool`` and
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
MAX_COOLDOWN_S = 7 * 24 * 3600.0


class BotState(StrEnum):
    READY = "ready"
    DRAINING = "draining"
    QUARANTINED = "quarantined"
    PROBING = "probing"  # its breaker lets it take one task, whose end decides
    LOST = "lost"
    DEREGISTERED = "deregistered"

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATES


LIVE_STATES = frozenset({BotState.READY, BotState.DRAINING, BotState.QUARANTINED, BotState.PROBING})


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
        """By an operator (``cooldown_s`` None: until reinstated by hand), or by the bot's
        circuit breaker, with its ``evidence``, until ``cooldown_s`` has passed."""

        reason: str
        evidence: dict[str, Any] | None = None
        cooldown_s: float | None = None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Before the circuit breaker: every quarantine was by hand."""
            state["evidence"] = None
            state["cooldown_s"] = None

        def apply(self, bot: Bot) -> None:
            bot.state = BotState.QUARANTINED
            bot.cooldown_s = self.cooldown_s
            bot.quarantined_at = self.timestamp

    class Probing(HiveAggregate.Event):
        """The breaker's cooldown passed: the bot may take one task, a probe."""

        cooldown_s: float  # the cooldown that passed (a failed probe doubles it)

        def apply(self, bot: Bot) -> None:
            bot.state = BotState.PROBING

    class Reinstated(HiveAggregate.Event):
        def apply(self, bot: Bot) -> None:
            bot.state = BotState.READY
            bot.cooldown_s = None
            bot.quarantined_at = None

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
        self.cooldown_s: float | None = None  # quarantined by its breaker: for this long
        self.quarantined_at: datetime | None = None

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
        if self.state not in (BotState.QUARANTINED, BotState.PROBING):
            raise InvalidTransition(f"bot is {self.state}, not quarantined", bot_id=self.id)
        self._record(self.Reinstated, cause, at)

    # -- its circuit breaker: each step only from the state it follows, else nothing ----

    def trip(self, evidence: dict[str, Any], cooldown_s: float, cause: Cause, at: datetime) -> None:
        """A ready bot failed beyond its breaker's threshold: quarantined for ``cooldown_s``."""
        if self.state is BotState.READY:
            self._quarantine(evidence, cooldown_s, cause, at)

    def probe(self, cause: Cause, at: datetime, *, again: bool = False) -> None:
        """Its breaker's cooldown passed: one probe task. A quarantine by hand stays.
        ``again``: the probe out proved nothing (it was cancelled): one more."""
        ready = BotState.PROBING if again else BotState.QUARANTINED
        if self.state is ready and self.cooldown_s is not None:
            self._record(self.Probing, cause, at, cooldown_s=self.cooldown_s)

    def pass_probe(self, cause: Cause, at: datetime) -> None:
        if self.state is BotState.PROBING:
            self._record(self.Reinstated, cause, at)

    def fail_probe(
        self, evidence: dict[str, Any], cooldown_s: float, cause: Cause, at: datetime
    ) -> None:
        if self.state is BotState.PROBING:
            self._quarantine(evidence, cooldown_s, cause, at)

    def _quarantine(
        self, evidence: dict[str, Any], cooldown_s: float, cause: Cause, at: datetime
    ) -> None:
        if not isinstance(cooldown_s, int | float) or not 0 < cooldown_s <= MAX_COOLDOWN_S:
            raise InvalidInput(f"cooldown must be more than 0 and at most {MAX_COOLDOWN_S:g} s")
        reason = (
            f"circuit breaker: {evidence.get('rule', 'tripped')}; "
            f"probed again after {cooldown_s:g} s"
        )
        self._record(
            self.Quarantined, cause, at, reason=reason, evidence=evidence, cooldown_s=cooldown_s
        )

    def mark_lost(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.is_live:
            self._record(self.Lost, cause, at, reason=reason)

    def deregister(self, cause: Cause, at: datetime) -> None:
        if self.state is not BotState.DEREGISTERED:
            self._record(self.Deregistered, cause, at)
