"""Each bot's circuit breaker, kept by the engine: what the bots' attempts say, and the loop
that acts on it (``domain/policies/breaker.py`` decides).

``Breakers`` is a live model. It starts from the fleet view (each live bot's breaker) and
the tasks view (who holds what), and then hears each task outcome once, in log order,
from the feed only (an outcome counted twice would trip a bot early): an attempt that
ended ``RetryScheduled`` or ``DeadLettered`` (its bot failed, was lost or timed out) is a
failure of its bot; a ``Succeeded`` is a success of the bot that held the task. A ``Failed``
task (not retryable: its own answer) says nothing of its bot. Outcomes before an engine
started are not counted: a restart begins every bot's count anew.

The bots' own events set each breaker: quarantined by the breaker (open until its
cooldown ends), probing (half-open), ready (closed); a bot quarantined by hand or draining
is no breaker's business. The loop (``BreakerLoop``, led by one engine) records the
policy's decisions through ``hive.fleet``; each is a no-op unless the bot still is where
the decision found it, so a decision repeated (by a second engine, or before the feed
brought the first) changes nothing. The loop applies what it recorded to the model at
once, by the bot's version: the feed's later copy changes nothing.

A half-open bot's probe is the first task assigned to it after ``Probing`` (the live index
gives it no other until the breaker decides). The probe's success, or its task's own
answer (a failure that is not retryable), reinstates the bot; an attempt of it that fails
quarantines it again for twice the cooldown. A probe cancelled before it ended proves
nothing: the bot probes again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.policies.breaker import (
    Attempt,
    BreakerConfig,
    BreakerState,
    Closed,
    Decision,
    HalfOpen,
    Open,
    Probe,
    Reinstate,
    Reopen,
    RollingTally,
    Trip,
    decide,
)
from domain.tasks import Task
from projections.breaker_reads import breakers_and_holders
from runtime.models import LiveModel

log = logging.getLogger(__name__)

LOOP = "breaker"
ENDED = (Task.Succeeded, Task.RetryScheduled, Task.DeadLettered, Task.Failed)
UNFINISHED = (Task.Cancelled, Task.LeaseExpired)  # no attempt ended: nothing of the bot
FOLLOWED = (Task.Assigned, *ENDED, *UNFINISHED)  # who holds a task, and how it ended


@dataclass
class BotBreaker:
    version: int
    state: BreakerState | None  # None: not the breaker's (quarantined by hand, draining)
    recent: RollingTally = field(default_factory=RollingTally)
    slots: int = 1  # its max_concurrency: how many of its attempts run side by side
    probe_task: UUID | None = None
    reprobe: bool = False  # its probe proved nothing: probe again
    news: bool = False  # an outcome since the policy last looked


def state_of(
    bot: Bot | str, cooldown_s: float | None, until: datetime | None
) -> BreakerState | None:
    """A bot's breaker, from its state (as the aggregate or the view has it); ``until``:
    when a breaker's quarantine ends."""
    state = str(bot.state) if isinstance(bot, Bot) else bot
    if state == BotState.READY:
        return Closed()
    if state == BotState.PROBING and cooldown_s is not None:
        return HalfOpen(cooldown_s)
    if state == BotState.QUARANTINED and cooldown_s is not None and until is not None:
        return Open(until, cooldown_s)
    return None


class Breakers(LiveModel):
    name = "breaker"
    topics = (*event_topics(Task), *event_topics(Bot))
    handles = frozenset(
        {
            Task.Assigned,
            *ENDED,
            *UNFINISHED,
            Bot.Registered,
            Bot.Draining,
            Bot.Quarantined,
            Bot.Probing,
            Bot.Reinstated,
            Bot.Lost,
            Bot.Deregistered,
        }
    )
    ignores = frozenset(  # neither an attempt's end nor whom a task is with
        {Task.Submitted, Task.Started, Task.Unroutable, Task.Redriven}
    )
    takes_own_writes = False  # an outcome counted twice would trip a bot early

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.lock = threading.Lock()
        self.position = 0
        self.tasks_position = 0  # task events up to here are in the snapshot already
        self.bots: dict[UUID, BotBreaker] = {}
        self.holders: dict[UUID, UUID] = {}  # task -> the bot it is assigned to
        self.wake = threading.Event()  # set when a bot's breaker may have something to do

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        fleet, tasks, bots, held = breakers_and_holders(conn)
        with self.lock:
            self.tasks_position = tasks
            self.holders = {task_id: bot_id for task_id, bot_id in held}
            for bot_id, version, state, cooldown_s, probe_at, slots in bots:
                breaker = state_of(state, cooldown_s, probe_at)
                self.bots[bot_id] = BotBreaker(version, breaker, slots=slots)
            for task_id, bot_id in reversed(held):  # a probe out: the latest held task
                b = self.bots.get(bot_id)
                if b is not None and isinstance(b.state, HalfOpen):
                    b.probe_task = task_id
        return min(fleet, tasks)

    # -- the log -----------------------------------------------------------------------

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        """Wakes the loop only for what may change a decision: a bot's own events, a
        failure, a probe's end, or a success of a bot with failures in its window (a
        success can still bring a bot to ``min_attempts``). A drain of successes wakes
        nothing."""
        stirred = False
        with self.lock:
            for position, event in events:
                if isinstance(event, Bot.Event):
                    self._bot_event(event)
                    stirred = True
                elif isinstance(event, Task.Event) and position > self.tasks_position:
                    stirred = self._task_event(event) or stirred
        if stirred:
            self.wake.set()

    def _bot_event(self, e: Any) -> None:
        bot_id = e.originator_id
        if isinstance(e, Bot.Registered):
            self.bots.setdefault(
                bot_id, BotBreaker(e.originator_version, Closed(), slots=e.max_concurrency)
            )
            return
        b = self.bots.get(bot_id)
        if b is None or e.originator_version <= b.version:
            return
        match e:
            case Bot.Lost() | Bot.Deregistered():
                del self.bots[bot_id]
                return
            case Bot.Draining():
                self._set(b, e.originator_version, None)
            case Bot.Quarantined():  # by hand (no cooldown): not the breaker's
                cooldown = e.cooldown_s
                until = None if cooldown is None else e.timestamp + timedelta(seconds=cooldown)
                opened = None if cooldown is None or until is None else Open(until, cooldown)
                self._set(b, e.originator_version, opened)
            case Bot.Probing():
                self._set(b, e.originator_version, HalfOpen(e.cooldown_s))
            case Bot.Reinstated():
                self._set(b, e.originator_version, Closed())

    def _task_event(self, e: Any) -> bool:
        """Returns whether the event may change a decision."""
        if not isinstance(e, FOLLOWED):
            return False  # a start, a submission, a flag, a re-drive: its holder stays
        task_id = e.originator_id
        if isinstance(e, Task.Assigned):
            self.holders[task_id] = e.bot_id
            b = self.bots.get(e.bot_id)
            if b is not None and isinstance(b.state, HalfOpen) and b.probe_task is None:
                b.probe_task = task_id
            return False
        bot_id = self.holders.pop(task_id, None)
        if isinstance(e, Task.RetryScheduled | Task.DeadLettered):
            bot_id = e.bot_id
        b = None if bot_id is None else self.bots.get(bot_id)
        if b is None:
            return False
        at = e.timestamp
        match e:
            case Task.Succeeded():
                return self._ended(b, task_id, Attempt(at, True))
            case Task.RetryScheduled() | Task.DeadLettered():
                return self._ended(b, task_id, Attempt(at, False, e.error_kind or e.outcome))
            case Task.Failed():  # the task's own answer: its bot did its work
                if b.probe_task == task_id:
                    return self._ended(b, task_id, Attempt(at, True))
            case _:  # cancelled, or taken back before it started: no attempt ended
                if b.probe_task == task_id:
                    b.probe_task, b.reprobe = None, True
                    return True
        return False

    def _ended(self, b: BotBreaker, task_id: UUID, attempt: Attempt) -> bool:
        """Counts the attempt; returns whether the bot's breaker has news for the policy."""
        if isinstance(b.state, Closed):
            b.recent.add(attempt)
            if not attempt.succeeded or b.recent.failures:  # else it cannot trip: no news
                b.news = True
        elif isinstance(b.state, HalfOpen) and b.probe_task == task_id and b.state.probe is None:
            b.state = HalfOpen(b.state.cooldown_s, attempt)
            b.news = True
        # open (a task it held when it tripped ended) or not the breaker's: not counted
        return b.news

    @staticmethod
    def _set(b: BotBreaker, version: int, state: BreakerState | None) -> None:
        b.version, b.state = version, state
        b.recent, b.probe_task, b.reprobe, b.news = RollingTally(), None, False, False

    # -- the loop's side -----------------------------------------------------------------

    def due(self, now: datetime) -> list[tuple[UUID, Decision, int]]:
        """Each bot's decision now, with the bot's version it was made at."""
        out: list[tuple[UUID, Decision, int]] = []
        with self.lock:
            for bot_id, b in self.bots.items():
                if b.state is None:
                    continue
                if b.reprobe and isinstance(b.state, HalfOpen):
                    out.append((bot_id, Probe(b.state.cooldown_s), b.version))
                    continue
                if isinstance(b.state, Closed) and not b.news:
                    continue
                b.news = False
                recent = b.recent.at(self.config, now)
                decision = decide(recent, self.config, b.state, now, b.slots)
                if decision is not None:
                    out.append((bot_id, decision, b.version))
        return out

    def next_probe(self) -> datetime | None:
        with self.lock:
            times = [b.state.until for b in self.bots.values() if isinstance(b.state, Open)]
        return min(times, default=None)

    def recorded(self, bot: Bot) -> None:
        """What the loop recorded for ``bot``, applied at once (by version)."""
        with self.lock:
            b = self.bots.get(bot.id)
            if b is None or bot.version <= b.version:
                return
            self._set(b, bot.version, state_of(bot, bot.cooldown_s, _until(bot)))


def _until(bot: Bot) -> datetime | None:
    if bot.quarantined_at is None or bot.cooldown_s is None:
        return None
    return bot.quarantined_at + timedelta(seconds=bot.cooldown_s)


class BreakerLoop:
    """Records what each bot's breaker decides; woken by outcomes, and at the next probe."""

    def __init__(
        self, hive: Hive, breakers: Breakers, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.hive, self.breakers, self.clock = hive, breakers, clock
        self.wake = breakers.wake

    def run_once(self) -> int:
        self.wake.clear()
        done = 0
        for bot_id, decision, _ in self.breakers.due(self.clock()):
            done += self._record(bot_id, decision)
        return done

    def wait_hint(self) -> float | None:
        """Seconds to the next probe; None when none is ahead (one already due and not
        recorded waits for the feed: the loop's interval, not a spin)."""
        at = self.breakers.next_probe()
        wait = None if at is None else (at - self.clock()).total_seconds()
        return wait if wait is not None and wait > 0 else None

    def _record(self, bot_id: UUID, decision: Decision) -> int:
        cause = Cause.engine(LOOP, f"breaker-{uuid.uuid4().hex[:12]}")
        fleet = self.hive.fleet
        match decision:
            case Trip(evidence=evidence, cooldown_s=cooldown):
                committed = fleet.trip(bot_id, evidence, cooldown, cause)
                action = "bot_quarantined"
            case Probe():
                committed = fleet.probe(bot_id, cause, again=self._reprobing(bot_id))
                action = "bot_probing"
            case Reinstate():
                committed = fleet.pass_probe(bot_id, cause)
                action = "bot_reinstated"
            case Reopen(evidence=evidence, cooldown_s=cooldown):
                committed = fleet.fail_probe(bot_id, evidence, cooldown, cause)
                action = "bot_quarantined"
        for bot in committed.items:
            self.breakers.recorded(bot)
            log.info(
                "circuit breaker: %s",
                action,
                extra={"action": action, "bot_id": str(bot.id), "state": str(bot.state)},
            )
        return len(committed.items)

    def _reprobing(self, bot_id: UUID) -> bool:
        with self.breakers.lock:
            b = self.breakers.bots.get(bot_id)
            return b is not None and b.reprobe
