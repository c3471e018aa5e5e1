"""The dispatcher over the live index and a real Hive (in-memory recorder, a fake clock):
no starvation under sustained urgent load, and unroutable tasks flagged exactly once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.bots import Bot
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.aging import Aging
from domain.policies.performance import Performance
from domain.policies.retry import RetryPolicy
from domain.policies.routing import Assignment, RoutingConfig
from domain.rounds import DispatchRound
from domain.tasks import Task, TaskState
from domain.unroutable import UnroutableTasks
from runtime.dispatcher import Dispatcher
from runtime.live import Changes, LiveIndex
from runtime.performance import LivePerformance
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")


@dataclass
class Engine:
    """A Hive with an engine's live index, learned performance and dispatcher, in one
    process: the index and the learning hear every write at once (there is no feed)."""

    clock: FakeClock = field(default_factory=FakeClock)
    aging: Aging = field(default_factory=Aging)
    can_launch: set[frozenset[str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=self.clock)
        self.index = LiveIndex(clock=self.clock)
        self.performance = LivePerformance()
        self.recorded: list[Any] = []  # every event written, in order
        self.hive.listeners += [
            self.index.apply,
            self.performance.follow,
            lambda saved: self.recorded.extend(e for _, e in saved),
        ]
        self.dispatcher = Dispatcher(
            self.hive,
            self.index,
            self.performance,
            page=100,
            config=RoutingConfig(aging=self.aging),
            can_launch=self.can_launch.__contains__,
        )

    def bot(self, caps: list[str], slots: int) -> UUID:
        bot, _, _ = self.hive.fleet.register(
            name="b", capabilities=caps, max_concurrency=slots, version_label="v1", cause=ALICE
        )
        return bot.id

    def submit(self, spec: TaskSpec, n: int = 1) -> list[UUID]:
        return [s.task.id for s in self.hive.tasks.submit([spec] * n, ALICE).items]

    def work_off(self, bot_id: UUID) -> None:
        """The bot starts and finishes everything it holds."""
        held = self.index.held_by(bot_id)
        tasks = self.hive.load_many(Task, held)
        reports = [Report(t, tasks[t].fencing_token) for t in held]
        who = Cause(f"bot:{bot_id}", "r")
        self.hive.tasks.start(bot_id, reports, who)
        self.hive.tasks.finish(
            bot_id, [Report(r.task_id, r.fencing_token, "1") for r in reports], who
        )

    def task(self, task_id: UUID) -> Task:
        return self.hive.get(Task, task_id)


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine()
    yield e
    e.hive.close()


def run_until_assigned(
    e: Engine, bot_id: UUID, low: UUID, *, arrivals: int, step_s: float, rounds: int
) -> int | None:
    """Rounds of: urgent tasks arrive, the dispatcher runs, the bot works, time passes.
    Returns the round in which ``low`` was assigned, or None."""
    for n in range(rounds):
        e.submit(TaskSpec("code", priority=9), arrivals)
        e.dispatcher.run_once()
        if e.task(low).state is not TaskState.PENDING:
            return n
        e.work_off(bot_id)
        e.clock.advance(step_s)
    return None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    aging_s=st.floats(1.0, 5.0),
    round_s=st.floats(1.0, 5.0),
    capacity=st.integers(1, 4),
    extra_arrivals=st.integers(0, 3),
    backlog=st.integers(0, 12),
    priority=st.integers(0, 8),
)
def test_low_priority_is_assigned_within_the_bound_under_sustained_urgent_load(
    aging_s: float, round_s: float, capacity: int, extra_arrivals: int, backlog: int, priority: int
) -> None:
    """More urgent tasks arrive every round than the bot can take, for ever. A task of
    lower priority still gets assigned: it reaches the ceiling after
    (ceiling - priority) x aging_s, and from then on only tasks older than it (at most the
    backlog it found) go first, ``capacity`` per round:

        rounds <= ceil(wait_bound / round_s) + ceil(backlog / capacity) + 1
    """
    e = Engine(aging=Aging(aging_s))
    try:
        bot_id = e.bot(["code"], capacity)
        e.submit(TaskSpec("code", priority=9), backlog)
        low = e.submit(TaskSpec("code", priority=priority))[0]
        bound = (
            math.ceil(e.aging.wait_bound_s(priority) / round_s) + math.ceil(backlog / capacity) + 1
        )
        got = run_until_assigned(
            e, bot_id, low, arrivals=capacity + extra_arrivals, step_s=round_s, rounds=bound + 1
        )
        assert got is not None and got <= bound, f"assigned in round {got}, bound {bound}"
    finally:
        e.hive.close()


def test_without_aging_the_same_load_starves_low_priority() -> None:
    """The control: with aging all but off, the stream above never lets the task through."""
    e = Engine(aging=Aging(1e9))
    try:
        bot_id = e.bot(["code"], 2)
        low = e.submit(TaskSpec("code", priority=0))[0]
        assert run_until_assigned(e, bot_id, low, arrivals=3, step_s=5.0, rounds=60) is None
    finally:
        e.hive.close()


def test_assignments_record_the_effective_priority_and_wait(engine: Engine) -> None:
    low = engine.submit(TaskSpec("code", priority=2))[0]
    engine.clock.advance(45.0)
    bot_id = engine.bot(["code"], 1)
    engine.dispatcher.run_once()
    why = _why(engine, low)
    assert why["effective_priority"] == 3.5 and why["waited_s"] == 45.0
    assert why["bots"] == [
        {"bot": str(bot_id), "capacity": 1, "samples": 0, "free": 1, "score": 1.0}
    ]


def test_a_delay_earns_no_priority(engine: Engine) -> None:
    """A delayed task waits, for aging, from its not_before: one delayed by ten minutes is
    not at the ceiling when it falls due, and a task that has waited longer goes first."""
    due = engine.clock.now + timedelta(minutes=10)
    delayed = engine.submit(TaskSpec("code", priority=0, not_before=due))[0]
    engine.clock.advance(540)
    waiting = engine.submit(TaskSpec("code", priority=0))[0]
    engine.clock.advance(60)
    bot_id = engine.bot(["code"], 1)
    engine.dispatcher.run_once()
    assert engine.task(waiting).state is TaskState.ASSIGNED
    assert engine.task(delayed).state is TaskState.PENDING
    engine.work_off(bot_id)
    engine.dispatcher.run_once()
    why = _why(engine, delayed)
    assert why["waited_s"] == 0.0 and why["effective_priority"] == 0.0


def test_learned_performance_reaches_the_next_decisions(engine: Engine) -> None:
    good, poor = engine.bot(["code"], 1), engine.bot(["code"], 1)
    for bot_id, ok in ((good, True), (poor, False)):
        for task_id in engine.submit(TaskSpec("code"), 6):
            engine.hive.tasks.assign([Assignment(task_id, bot_id, {})], ENGINE)
            token = engine.task(task_id).fencing_token
            who = Cause(f"bot:{bot_id}", "r")
            engine.hive.tasks.start(bot_id, [Report(task_id, token)], who)
            report = Report(task_id, token, "1") if ok else Report(task_id, token, error="boom")
            engine.hive.tasks.finish(bot_id, [report], who)
    assert engine.performance.snapshot()[poor, "code"].success == 0.0
    task_id = engine.submit(TaskSpec("code"))[0]
    engine.dispatcher.run_once()
    why = _why(engine, task_id)
    assert engine.task(task_id).bot_id == good
    assert [b["bot"] for b in why["bots"]] == [str(good), str(poor)]
    assert why["bots"][1]["success"] == 0.0 and why["bots"][1]["samples"] == 6


def test_a_round_of_several_tasks_shares_one_record_of_what_explains_them(
    engine: Engine,
) -> None:
    urgent = engine.submit(TaskSpec("code", priority=9), 2)
    engine.clock.advance(30.0)
    calm = engine.submit(TaskSpec("code", priority=1), 2)
    big, small = engine.bot(["code"], 3), engine.bot(["code"], 1)
    before = len(engine.recorded)
    assert engine.dispatcher.run_once() == 4
    record, *assigned = engine.recorded[before:]
    assert isinstance(record, DispatchRound.Decided)
    assert [e.originator_id for e in assigned] == [*urgent, *calm]  # most urgent first
    assert all(e.round_id == record.originator_id for e in assigned)
    first = _why(engine, urgent[0])
    assert first["effective_priority"] == 10 and first["waited_s"] == 30.0
    assert sorted((b["bot"], b["free"], b["score"]) for b in first["bots"]) == sorted(
        [(str(big), 3, 1.0), (str(small), 1, 1.0)]  # a tie: the lower id goes first
    )
    assert first["bots"][0]["bot"] == str(engine.task(urgent[0]).bot_id)
    last = _why(engine, calm[1])  # the small bot took one: only the big one is left
    assert last["effective_priority"] == 1.0 and last["waited_s"] == 0.0
    assert [(b["bot"], b["free"], b["score"]) for b in last["bots"]] == [(str(big), 1, 0.8)]


# -- unroutable ------------------------------------------------------------------------------


def _why(engine: Engine, task_id: UUID) -> dict[str, Any]:
    """The task's latest assignment's explanation, made whole from its round if it has one."""
    [*_, assigned] = [e for e in engine.hive.history(task_id) if isinstance(e, Task.Assigned)]
    if assigned.round_id is None:
        return assigned.why
    return engine.hive.get(DispatchRound, assigned.round_id).explain(assigned.why)


def flags(engine: Engine, task_id: UUID) -> list[UnroutableTasks.Unroutable]:
    """The unroutable records that named the task."""
    return [
        e
        for e in engine.recorded
        if isinstance(e, UnroutableTasks.Unroutable) and task_id in e.task_ids
    ]


def flagged(engine: Engine, task_id: UUID) -> bool:
    """Whether the task is flagged now, as the index (which reads the records) has it."""
    return engine.index.tasks[task_id].unroutable


def test_a_task_no_bot_can_do_is_flagged_once_and_not_again_while_nothing_changes(
    engine: Engine,
) -> None:
    engine.bot(["code"], 2)
    gpu = engine.submit(TaskSpec("render", capabilities=["render", "gpu"]))[0]
    assert engine.dispatcher.run_once() == 1
    for _ in range(3):
        assert engine.dispatcher.run_once() == 0
    [flag] = flags(engine, gpu)
    assert flag.missing == ["gpu", "render"] and "gpu, render" in flag.reason
    assert flag.capabilities == ["gpu", "render"] and flag.task_ids == [gpu]
    assert engine.task(gpu).state is TaskState.PENDING and flagged(engine, gpu)


def test_a_backlog_no_bot_can_do_is_one_record_not_an_event_per_task(engine: Engine) -> None:
    backlog = engine.submit(TaskSpec("render"), 50)
    before = len(engine.recorded)
    assert engine.dispatcher.run_once() == 50
    [record] = engine.recorded[before:]
    assert isinstance(record, UnroutableTasks.Unroutable)
    assert sorted(record.task_ids) == sorted(backlog)
    assert all(flagged(engine, t) for t in backlog)
    more = engine.submit(TaskSpec("render"), 3)  # new ones: one more record, for them only
    engine.dispatcher.run_once()
    assert sorted(engine.recorded[-1].task_ids) == sorted(more)


def test_the_flag_clears_on_assignment_and_returns_when_the_only_capable_bot_is_lost(
    engine: Engine,
) -> None:
    task_id = engine.submit(TaskSpec("render"))[0]
    engine.dispatcher.run_once()
    assert len(flags(engine, task_id)) == 1
    renderer = engine.bot(["render"], 1)
    engine.dispatcher.run_once()
    assert engine.task(task_id).state is TaskState.ASSIGNED and not flagged(engine, task_id)
    engine.hive.fleet.lose(renderer, [task_id], "silence", ENGINE)
    engine.dispatcher.run_once()
    engine.dispatcher.run_once()
    assert len(flags(engine, task_id)) == 2
    assert flagged(engine, task_id)


def test_no_one_bot_with_everything_is_unroutable_too(engine: Engine) -> None:
    engine.bot(["render"], 1)
    engine.bot(["gpu"], 1)
    task_id = engine.submit(TaskSpec("render", capabilities=["render", "gpu"]))[0]
    engine.dispatcher.run_once()
    [flag] = flags(engine, task_id)
    assert flag.missing == [] and "all of gpu, render" in flag.reason


def test_a_pool_that_could_launch_a_bot_keeps_the_task_routable() -> None:
    e = Engine(can_launch={frozenset({"render"})})
    try:
        task_id = e.submit(TaskSpec("render"))[0]
        e.dispatcher.run_once()
        assert flags(e, task_id) == []
    finally:
        e.hive.close()


def test_a_quarantined_bot_could_serve_but_a_draining_one_could_not(engine: Engine) -> None:
    held = engine.bot(["render"], 1)
    engine.hive.fleet.quarantine(held, "flaky", ALICE)
    first = engine.submit(TaskSpec("render"))[0]
    engine.dispatcher.run_once()
    assert flags(engine, first) == [], "an operator may reinstate it"
    engine.hive.fleet.reinstate(held, ALICE)
    engine.hive.fleet.drain([held], "shrinking", ENGINE)
    engine.dispatcher.run_once()
    assert len(flags(engine, first)) == 1, "a draining bot never takes new work again"
    assert engine.hive.get(Bot, held).state == "draining"


def test_the_index_says_when_the_fleet_changed_and_task_traffic_does_not(engine: Engine) -> None:
    """The postman wakes on ``Changes.fleet`` only: not once per task event under load."""
    heard: list[Changes] = []
    engine.index.listeners.append(heard.append)
    bot = engine.bot(["code"], 4)
    assert [c.fleet for c in heard] == [True]
    engine.submit(TaskSpec("code"), 3)
    engine.dispatcher.run_once()
    engine.work_off(bot)
    engine.hive.fleet.quarantine(bot, "flaky", ALICE)
    assert len(heard) > 1 and not any(c.fleet for c in heard[1:])
    heard.clear()
    engine.hive.fleet.reinstate(bot, ALICE)
    engine.hive.fleet.lose(bot, [], "silence", ENGINE)
    assert [c.fleet for c in heard] == [True, True]


# -- a new task assigned in its own submission (the idle dispatcher's hand-off) ----------


def handing_off(engine: Engine) -> Engine:
    """The engine as a process that leads the dispatcher: submissions may be handed off."""
    engine.dispatcher.leading = lambda: True
    engine.hive.tasks.placer = engine.dispatcher
    return engine


def test_an_idle_dispatcher_assigns_a_new_task_in_its_own_submission(engine: Engine) -> None:
    e = handing_off(engine)
    bot = e.bot(["code"], 2)
    e.dispatcher.run_once()  # the bot's arrival is news: the round has seen it
    e.recorded.clear()
    (task_id,) = e.submit(TaskSpec("code"))
    submitted, assigned = e.recorded  # one save, two events of the task, nothing else
    assert isinstance(submitted, Task.Submitted) and isinstance(assigned, Task.Assigned)
    assert assigned.originator_id == task_id and assigned.bot_id == bot
    assert assigned.timestamp == submitted.timestamp  # in its submission
    assert assigned.actor == "engine:dispatcher" and submitted.actor == ALICE.actor
    assert assigned.why["policy"] and assigned.why["bots"][0]["bot"] == str(bot)
    assert e.index.held_by(bot) == [task_id]
    assert not e.dispatcher.wake.is_set()  # nothing is left for a round
    assert e.dispatcher.run_once() == 0


def test_no_hand_off_where_this_process_does_not_lead_the_dispatcher(engine: Engine) -> None:
    e = handing_off(engine)
    e.dispatcher.leading = lambda: False
    e.bot(["code"], 2)
    e.dispatcher.run_once()
    (task_id,) = e.submit(TaskSpec("code"))
    assert e.task(task_id).state is TaskState.PENDING
    assert e.dispatcher.wake.is_set()  # the leader's round assigns it
    assert e.dispatcher.run_once() == 1


def test_no_hand_off_while_news_waits_for_a_round_so_an_older_task_goes_first(
    engine: Engine,
) -> None:
    e = engine
    bot = e.bot(["code"], 1)
    e.dispatcher.run_once()
    (older,) = e.submit(TaskSpec("code"))  # no hand-off yet: it waits for a round
    handing_off(e)
    (newer,) = e.submit(TaskSpec("code", priority=5))
    assert e.task(newer).state is TaskState.PENDING
    assert e.dispatcher.run_once() == 1
    assert e.index.held_by(bot) == [older]


def test_no_hand_off_while_a_round_or_another_hand_off_runs(engine: Engine) -> None:
    e = handing_off(engine)
    e.bot(["code"], 4)
    e.dispatcher.run_once()
    with e.dispatcher.hand_off() as place:
        assert place is not None
        (task_id,) = e.submit(TaskSpec("code"))  # meanwhile: it waits for a round
    assert e.task(task_id).state is TaskState.PENDING


def test_a_hand_off_takes_only_a_free_slot_and_capacity_holds_after(engine: Engine) -> None:
    e = handing_off(engine)
    bot = e.bot(["code"], 1)
    e.dispatcher.run_once()
    first, second = e.submit(TaskSpec("code")), e.submit(TaskSpec("code"))
    assert e.index.held_by(bot) == first
    assert e.task(second[0]).state is TaskState.PENDING
    assert e.dispatcher.run_once() == 0  # the bot is full
    e.work_off(bot)
    assert e.dispatcher.run_once() == 1
    assert e.index.held_by(bot) == second


def test_a_batch_is_handed_off_as_far_as_the_slots_go(engine: Engine) -> None:
    e = handing_off(engine)
    bot = e.bot(["code"], 3)
    e.dispatcher.run_once()
    ids = e.submit(TaskSpec("code"), 5)
    assert sorted(e.index.held_by(bot)) == sorted(ids[:3])  # the oldest of the batch
    assert [e.task(t).state for t in ids[3:]] == [TaskState.PENDING] * 2
    assert e.dispatcher.wake.is_set()


def test_a_delayed_task_is_not_handed_off(engine: Engine) -> None:
    e = handing_off(engine)
    e.bot(["code"], 2)
    e.dispatcher.run_once()
    (task_id,) = e.submit(TaskSpec("code", not_before=e.clock() + timedelta(seconds=30)))
    assert e.task(task_id).state is TaskState.PENDING
    e.clock.advance(31)
    assert e.dispatcher.run_once() == 1


def test_a_task_no_free_bot_can_do_is_not_handed_off(engine: Engine) -> None:
    e = handing_off(engine)
    e.bot(["code"], 2)
    e.dispatcher.run_once()
    (task_id,) = e.submit(TaskSpec("writing"))
    assert e.task(task_id).state is TaskState.PENDING
    assert e.dispatcher.run_once() == 1  # the round flags it: no bot has "writing"
    assert e.index.tasks[task_id].unroutable


def test_a_hand_off_takes_a_page_at_most_as_a_round_does(engine: Engine) -> None:
    e = handing_off(engine)
    bot = e.bot(["code"], 10)
    e.dispatcher.run_once()
    e.dispatcher.page = 2
    ids = e.submit(TaskSpec("code"), 5)
    assert sorted(e.index.held_by(bot)) == sorted(ids[:2])
    assert e.dispatcher.run_once() == 2


def test_a_batch_handed_off_shares_one_round_record_saved_ahead_of_it(engine: Engine) -> None:
    e = handing_off(engine)
    bot = e.bot(["code"], 3)
    e.dispatcher.run_once()
    e.recorded.clear()
    ids = e.submit(TaskSpec("code"), 3)
    record, *rest = e.recorded
    assert isinstance(record, DispatchRound.Decided)
    assigned = [x for x in rest if isinstance(x, Task.Assigned)]
    assert [a.originator_id for a in assigned] == ids
    assert {a.round_id for a in assigned} == {record.originator_id}
    assert all(a.bot_id == bot and a.actor == "engine:dispatcher" for a in assigned)


def test_a_retry_goes_to_a_bot_that_has_not_failed_it_until_a_redrive_forgets(
    engine: Engine,
) -> None:
    engine.hive.tasks.policies = lambda _: RetryPolicy(max_attempts=3, jitter=0.0)
    failing, other = engine.bot(["code"], 4), engine.bot(["code"], 1)
    engine.performance.records[other, "code"] = Performance(0.3, 1.0, 30)  # a poor record
    task_id = engine.submit(TaskSpec("code"))[0]
    engine.dispatcher.run_once()
    assert engine.task(task_id).bot_id == failing  # it scores best, and keeps doing so
    fail(engine, failing, task_id)
    engine.clock.advance(1.0)  # the backoff
    engine.dispatcher.run_once()
    assert engine.task(task_id).bot_id == other, "the retry went back to the bot that failed it"
    assert _why(engine, task_id)["bots"][0]["bot"] == str(other)
    assert engine.index.tasks[task_id].failed_by == {failing}
    fail(engine, other, task_id)
    engine.clock.advance(2.0)
    engine.dispatcher.run_once()
    assert engine.task(task_id).bot_id == failing  # both failed it: the best score decides
    fail(engine, failing, task_id)
    assert engine.task(task_id).state is TaskState.DEAD
    assert task_id not in engine.index.tasks
    engine.hive.tasks.redrive([task_id], "fixed", ALICE)
    assert engine.index.tasks[task_id].failed_by == frozenset()  # a new series


def test_a_retry_goes_back_to_the_bot_that_failed_it_when_no_other_has_room(
    engine: Engine,
) -> None:
    engine.hive.tasks.policies = lambda _: RetryPolicy(max_attempts=3, jitter=0.0)
    failing, other = engine.bot(["code"], 1), engine.bot(["code"], 1)
    task_id = engine.submit(TaskSpec("code"))[0]
    engine.dispatcher.run_once()
    holder = engine.task(task_id).bot_id
    assert holder is not None
    engine.hive.tasks.assign(
        [
            Assignment(
                engine.submit(TaskSpec("code"))[0], other if holder == failing else failing, {}
            )
        ],
        ENGINE,
    )
    fail(engine, holder, task_id)
    engine.clock.advance(1.0)
    engine.dispatcher.run_once()
    assert engine.task(task_id).bot_id == holder


def fail(e: Engine, bot_id: UUID, task_id: UUID) -> None:
    """The bot starts the task it holds and reports a (retryable) failure."""
    token = e.task(task_id).fencing_token
    who = Cause(f"bot:{bot_id}", "r")
    e.hive.tasks.start(bot_id, [Report(task_id, token)], who)
    e.hive.tasks.finish(bot_id, [Report(task_id, token, error="boom")], who)


def test_a_bot_that_failed_lately_is_shunned_while_another_has_room(engine: Engine) -> None:
    """Degraded: routing keeps other tasks away from a bot that failed an attempt lately,
    and gives it one only when no other bot has room (the core keeps working)."""
    engine.hive.tasks.policies = lambda _: RetryPolicy(max_attempts=3, jitter=0.0)
    failing, healthy = engine.bot(["code"], 4), engine.bot(["code"], 1)
    engine.performance.records[healthy, "code"] = Performance(0.3, 1.0, 30)  # scores worse
    first = engine.submit(TaskSpec("code"))[0]
    engine.dispatcher.run_once()
    assert engine.task(first).bot_id == failing
    fail(engine, failing, first)
    since = engine.clock() - timedelta(seconds=60)
    assert engine.index.recently_failed(since) == {failing}
    engine.dispatcher.shunned = lambda: engine.index.recently_failed(since)
    other = engine.submit(TaskSpec("code"))[0]  # a new task: the failed bot is not its own
    engine.dispatcher.run_once()
    assert engine.task(other).bot_id == healthy
    last = engine.submit(TaskSpec("code"))[0]  # the healthy bot is full: the shunned may
    engine.dispatcher.run_once()
    assert engine.task(last).bot_id == failing
    assert engine.index.recently_failed(engine.clock() + timedelta(seconds=1)) == frozenset()
