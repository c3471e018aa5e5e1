"""The engine's circuit breakers over a real Hive (in-memory recorder, a fake clock): the
model hears each outcome once, the loop records the policy's decisions, the live index
gives a probing bot one task; and a quarantine stored before the breaker still loads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.breaker import BreakerConfig
from domain.policies.retry import RetryPolicy
from domain.tasks import Task, TaskState
from runtime.breaker import BreakerLoop, Breakers
from runtime.dispatcher import Dispatcher
from runtime.live import LiveIndex
from runtime.performance import LivePerformance
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.0, max_backoff_s=0.0, jitter=0.0)
CONFIG = BreakerConfig(consecutive_failures=3, min_attempts=100, cooldown_s=30, max_cooldown_s=100)


@dataclass
class Engine:
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        self.hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=self.clock)
        self.hive.tasks.policies = lambda _: RETRY
        self.index = LiveIndex(clock=self.clock)
        self.breakers = Breakers(CONFIG)
        self.hive.listeners += [self.index.apply, self.breakers.follow]
        self.dispatcher = Dispatcher(self.hive, self.index, LivePerformance(), page=100)
        self.loop = BreakerLoop(self.hive, self.breakers, clock=self.clock)

    def bot(self, slots: int = 1) -> UUID:
        bot, _, _ = self.hive.fleet.register(
            name="b", capabilities=["code"], max_concurrency=slots, version_label="v1", cause=ALICE
        )
        return bot.id

    def submit(self, n: int) -> list[UUID]:
        specs = [TaskSpec("code")] * n
        return [s.task.id for s in self.hive.tasks.submit(specs, ALICE).items]

    def work_off(
        self, bot_id: UUID, *, ok: bool, retryable: bool = True, started: bool = False
    ) -> int:
        """The bot reports everything it holds: done, or failed (``started``: it reports
        the start first, as a bot running its tasks on a pool does; else the finish says
        how long each ran)."""
        held = self.index.held_by(bot_id)
        tasks = self.hive.load_many(Task, held)
        who = Cause(f"bot:{bot_id}", "r")
        ran = None if started else 0.1
        if started and held:
            self.hive.tasks.start(bot_id, [Report(t, tasks[t].fencing_token) for t in held], who)
        reports = [
            Report(t, tasks[t].fencing_token, "1", ran_s=ran)
            if ok
            else Report(t, tasks[t].fencing_token, error="boom", ran_s=ran, retryable=retryable)
            for t in held
        ]
        if reports:
            self.hive.tasks.finish(bot_id, reports, who)
        return len(reports)

    def state(self, bot_id: UUID) -> BotState:
        return self.hive.get(Bot, bot_id).state


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine()
    yield e
    e.hive.close()


def fail_until_tripped(e: Engine, bot_id: UUID) -> int:
    """Rounds of: dispatch, the bot fails what it holds, the breaker looks. Returns the
    failures it took."""
    failed = 0
    for _ in range(20):
        e.dispatcher.run_once()
        failed += e.work_off(bot_id, ok=False)
        e.loop.run_once()
        if e.state(bot_id) is BotState.QUARANTINED:
            return failed
    raise AssertionError("the breaker never tripped")


def test_a_bot_failing_in_a_row_is_quarantined_with_the_evidence(engine: Engine) -> None:
    bad = engine.bot()
    engine.submit(10)
    assert fail_until_tripped(engine, bad) == CONFIG.consecutive_failures
    quarantined = [e for e in engine.hive.history(bad) if isinstance(e, Bot.Quarantined)]
    assert len(quarantined) == 1
    q = quarantined[0]
    assert q.actor == "engine:breaker" and q.cooldown_s == CONFIG.cooldown_s
    assert q.evidence is not None and q.evidence["rule"] == "consecutive"
    assert q.evidence["consecutive_failures"] == 3 and q.evidence["kinds"] == ["failed"] * 3
    engine.dispatcher.run_once()
    assert engine.index.held_by(bad) == []  # a quarantined bot gets nothing
    assert engine.loop.run_once() == 0  # deciding again records nothing


def test_a_success_after_a_reported_start_ends_the_streak(engine: Engine) -> None:
    """Two failures, a success of a task whose start was reported, two failures: no three
    in a row, so the bot keeps its work."""
    bot = engine.bot()
    engine.submit(5)
    for ok in (False, False, True, False, False):
        engine.dispatcher.run_once()
        assert engine.work_off(bot, ok=ok, started=True) == 1
        engine.loop.run_once()
    assert engine.state(bot) is BotState.READY
    engine.dispatcher.run_once()
    engine.work_off(bot, ok=False, started=True)  # the third in a row
    engine.loop.run_once()
    assert engine.state(bot) is BotState.QUARANTINED


def test_a_failure_the_bot_says_is_not_retryable_is_not_the_bots_fault(engine: Engine) -> None:
    bot = engine.bot()
    engine.submit(10)
    for _ in range(6):
        engine.dispatcher.run_once()
        engine.work_off(bot, ok=False, retryable=False)
        engine.loop.run_once()
    assert engine.state(bot) is BotState.READY
    assert engine.hive.get(Task, engine.submit(1)[0]).state is TaskState.PENDING


def test_after_the_cooldown_one_probe_its_failure_doubles_and_its_success_reinstates(
    engine: Engine,
) -> None:
    bad = engine.bot(slots=4)
    engine.submit(20)
    fail_until_tripped(engine, bad)
    engine.clock.advance(CONFIG.cooldown_s - 1)
    assert engine.loop.run_once() == 0  # not yet
    engine.clock.advance(1)
    assert engine.loop.run_once() == 1
    assert engine.state(bad) is BotState.PROBING
    engine.dispatcher.run_once()
    engine.dispatcher.run_once()
    assert len(engine.index.held_by(bad)) == 1  # one probe, though it has four slots
    engine.work_off(bad, ok=False)
    engine.dispatcher.run_once()
    assert engine.index.held_by(bad) == []  # no second task before the breaker decides
    engine.loop.run_once()
    assert engine.state(bad) is BotState.QUARANTINED
    reopened = [e for e in engine.hive.history(bad) if isinstance(e, Bot.Quarantined)][-1]
    assert reopened.cooldown_s == 2 * CONFIG.cooldown_s
    assert reopened.evidence == {"rule": "probe", "kinds": ["failed"], "cooldown_s": 60.0}

    engine.clock.advance(2 * CONFIG.cooldown_s)
    engine.loop.run_once()
    probing = [e for e in engine.hive.history(bad) if isinstance(e, Bot.Probing)]
    assert [p.cooldown_s for p in probing] == [30.0, 60.0]
    engine.dispatcher.run_once()
    assert engine.work_off(bad, ok=True) == 1
    engine.loop.run_once()
    assert engine.state(bad) is BotState.READY
    engine.dispatcher.run_once()
    assert len(engine.index.held_by(bad)) == 4  # all its slots again


def test_a_cancelled_probe_proves_nothing_and_the_bot_probes_again(engine: Engine) -> None:
    bad = engine.bot()
    engine.submit(10)
    fail_until_tripped(engine, bad)
    engine.clock.advance(CONFIG.cooldown_s)
    engine.loop.run_once()
    engine.dispatcher.run_once()
    (probe,) = engine.index.held_by(bad)
    engine.hive.tasks.cancel(probe, "not needed", ALICE)
    engine.dispatcher.run_once()
    assert engine.index.held_by(bad) == []
    assert engine.loop.run_once() == 1
    assert engine.state(bad) is BotState.PROBING
    engine.dispatcher.run_once()
    assert len(engine.index.held_by(bad)) == 1


def test_a_quarantine_by_hand_is_never_lifted_by_the_breaker(engine: Engine) -> None:
    bot = engine.bot()
    engine.hive.fleet.quarantine(bot, "investigating", ALICE)
    engine.clock.advance(10_000)
    assert engine.loop.run_once() == 0
    assert engine.state(bot) is BotState.QUARANTINED


def test_a_quarantine_recorded_before_the_breaker_still_loads_as_by_hand(hive: Hive) -> None:
    """Version 1 of Bot.Quarantined had only a reason: an operator's, no evidence."""
    bot_id = uuid4()
    v1_state = {
        "originator_id": str(bot_id),
        "originator_version": 2,
        "timestamp": "2026-11-01T00:00:00+00:00",
        "actor": "admin",
        "request_id": "old",
        "reason": "flaky",
    }
    stored = StoredEvent(
        originator_id=bot_id,
        originator_version=2,
        topic=get_topic(Bot.Quarantined),
        state=orjson.dumps(v1_state),
    )
    event = hive.mapper.to_domain_event(stored)
    assert isinstance(event, Bot.Quarantined)
    assert (event.reason, event.evidence, event.cooldown_s) == ("flaky", None, None)
    bot, _, _ = hive.fleet.register(
        name="b", capabilities=["code"], max_concurrency=1, version_label="v", cause=ALICE
    )
    loaded = hive.get(Bot, bot.id)
    event.apply(loaded)
    assert loaded.state is BotState.QUARANTINED and loaded.cooldown_s is None
    loaded.probe(ALICE, event.timestamp)
    assert loaded.state is BotState.QUARANTINED  # by hand: no probe
