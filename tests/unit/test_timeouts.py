"""Execution timeouts over the live index and a real Hive (in-memory recorder, a fake
clock): an attempt past its deadline is ended once, its late report refused; the loop
wakes at the soonest deadline and costs nothing while no timeout applies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest

from domain.cause import Cause
from domain.errors import NotYourTask, StaleFencingToken
from domain.hive import Hive, Report, TaskSpec
from domain.policies.retry import RetryLimits, RetryPolicy
from domain.policies.routing import Assignment
from domain.tasks import Task, TaskState
from runtime.live import LiveIndex
from runtime.retry_config import RetryPolicies
from runtime.timeouts import AttemptTimeouts
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")
CODE = TaskSpec("code")


class Engine:
    def __init__(self, timeout_s: float | None) -> None:
        self.clock = FakeClock()
        self.hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=self.clock)
        self.index = LiveIndex(clock=self.clock)
        self.hive.listeners.append(self.index.apply)
        self.timeouts = AttemptTimeouts(self.hive, self.index)
        self.policy(timeout_s)
        bot, _, _ = self.hive.fleet.register(
            name="b", capabilities=["code"], max_concurrency=8, version_label="v1", cause=ALICE
        )
        self.bot = bot.id

    def policy(self, timeout_s: float | None) -> None:
        """The config's retry policies change (as the node's configure hook passes them)."""
        policies = RetryPolicies(RetryPolicy(jitter=0.0, timeout_s=timeout_s), {})
        self.hive.tasks.policies = policies
        of_type = (lambda t: policies(t).timeout_s) if policies.timeouts else None
        self.timeouts.configure(of_type)

    def assigned(self, spec: TaskSpec = CODE) -> UUID:
        task_id = self.hive.tasks.submit([spec], ALICE).items[0].task.id
        self.hive.tasks.assign([Assignment(task_id, self.bot, {})], ENGINE)
        return task_id

    def start(self, task_id: UUID) -> None:
        token = self.task(task_id).fencing_token
        self.hive.tasks.start(self.bot, [Report(task_id, token)], Cause(f"bot:{self.bot}", "r"))

    def task(self, task_id: UUID) -> Task:
        return self.hive.get(Task, task_id)


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine(timeout_s=10.0)
    yield e
    e.hive.close()


def test_an_attempt_past_its_timeout_is_retried_once_and_its_late_report_refused(
    engine: Engine,
) -> None:
    task_id = engine.assigned()
    token = engine.task(task_id).fencing_token
    assert engine.timeouts.wait_hint() == 10.0
    engine.clock.advance(9.999)
    assert engine.timeouts.run_once() == 0
    engine.clock.advance(0.001)
    assert engine.timeouts.run_once() == 1
    assert engine.timeouts.run_once() == 0  # ended once
    task = engine.task(task_id)
    assert (task.state, task.attempt, task.error_kind) == (TaskState.PENDING, 2, "timeout")
    last = engine.hive.recorder.select_events(task_id)[-1]
    assert last.topic.endswith("Task.RetryScheduled") and b'"timed-out"' in last.state
    with pytest.raises((NotYourTask, StaleFencingToken)):
        late = Report(task_id, token, "1", ran_s=1.0)
        engine.hive.tasks.finish(engine.bot, [late], Cause(f"bot:{engine.bot}", "r"))
    assert engine.timeouts.wait_hint() is None  # nothing held has a deadline now


def test_a_reported_start_moves_the_deadline(engine: Engine) -> None:
    task_id = engine.assigned()
    engine.clock.advance(5.0)
    engine.start(task_id)
    assert engine.timeouts.wait_hint() == 10.0
    engine.clock.advance(5.0)
    assert engine.timeouts.run_once() == 0  # the assignment's deadline: gone stale
    engine.clock.advance(5.0)
    assert engine.timeouts.run_once() == 1


def test_the_last_attempt_past_its_timeout_is_dead_lettered(engine: Engine) -> None:
    task_id = engine.assigned(TaskSpec("code", retry=RetryLimits(max_attempts=1)))
    engine.clock.advance(10.0)
    assert engine.timeouts.run_once() == 1
    assert engine.task(task_id).state is TaskState.DEAD
    assert task_id not in engine.index.tasks


def test_a_sooner_deadline_wakes_the_loop_and_the_soonest_is_waited_for() -> None:
    e = Engine(timeout_s=None)
    slow = e.assigned(TaskSpec("code", retry=RetryLimits(timeout_s=30.0)))
    assert e.timeouts.wait_hint() == 30.0
    e.timeouts.wake.clear()
    e.clock.advance(1.0)
    fast = e.assigned(TaskSpec("code", retry=RetryLimits(timeout_s=5.0)))
    assert e.timeouts.wake.is_set() and e.timeouts.wait_hint() == 5.0
    e.clock.advance(5.0)
    assert e.timeouts.run_once() == 1
    assert e.task(fast).state is TaskState.PENDING and e.task(slow).state is TaskState.ASSIGNED


def test_nothing_is_kept_or_done_while_no_timeout_applies() -> None:
    e = Engine(timeout_s=None)
    task_id = e.assigned()
    e.start(task_id)
    assert e.index.deadlines.heap == [] and e.timeouts.wait_hint() is None
    e.clock.advance(timedelta(days=30))
    assert e.timeouts.run_once() == 0
    assert e.task(task_id).state is TaskState.RUNNING


def test_a_policy_that_gains_or_loses_a_timeout_applies_to_the_attempts_held() -> None:
    e = Engine(timeout_s=None)
    task_id = e.assigned()
    e.policy(20.0)  # the config changed: the attempt held has a deadline now
    assert e.timeouts.wait_hint() == 20.0
    e.policy(None)  # and none again
    e.clock.advance(20.0)
    assert e.timeouts.run_once() == 0 and e.timeouts.wait_hint() is None
    assert e.task(task_id).state is TaskState.ASSIGNED
