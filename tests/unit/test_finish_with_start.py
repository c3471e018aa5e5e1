"""A finish that says its start too (``ran_s``): a task a bot never reported started goes
from assigned to succeeded or failed in one event; the old finish events still load."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.hive import Hive, Report, TaskSpec
from domain.policies.routing import Assignment
from domain.policies.runs import Run, follow
from domain.tasks import Task, TaskState
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")


def assigned(hive: Hive, clock: FakeClock) -> tuple[UUID, UUID, Cause]:
    bot, _, _ = hive.fleet.register(
        name="b", capabilities=["noop"], max_concurrency=1, version_label="v1", cause=ALICE
    )
    task_id = hive.tasks.submit([TaskSpec("noop")], ALICE).items[0].task.id
    hive.tasks.assign([Assignment(task_id, bot.id, {})], ENGINE)
    clock.advance(2.0)
    return task_id, bot.id, Cause(f"bot:{bot.id}", "r")


def test_an_assigned_task_finishes_in_one_event_with_how_long_it_ran(
    hive: Hive, clock: FakeClock
) -> None:
    task_id, bot_id, me = assigned(hive, clock)
    done = hive.tasks.finish(bot_id, [Report(task_id, 1, result="{}", ran_s=0.25)], me)
    [(_, event)] = done.recorded
    assert isinstance(event, Task.Succeeded) and event.ran_s == 0.25
    assert hive.get(Task, task_id).state is TaskState.SUCCEEDED


def test_ran_s_is_never_more_than_the_task_was_assigned(hive: Hive, clock: FakeClock) -> None:
    task_id, bot_id, me = assigned(hive, clock)  # assigned 2 s ago
    done = hive.tasks.finish(
        bot_id, [Report(task_id, 1, error="boom", ran_s=60.0, retryable=False)], me
    )
    [(_, event)] = done.recorded
    assert isinstance(event, Task.Failed) and event.ran_s == 2.0


def test_without_ran_s_an_assigned_task_must_be_started_first(hive: Hive, clock: FakeClock) -> None:
    task_id, bot_id, me = assigned(hive, clock)
    with pytest.raises(InvalidTransition):
        hive.tasks.finish(bot_id, [Report(task_id, 1, result="{}")], me)


@pytest.mark.parametrize("ran_s", [-0.5, float("nan"), 1e12])
def test_a_bad_ran_s_is_refused(hive: Hive, clock: FakeClock, ran_s: float) -> None:
    task_id, bot_id, me = assigned(hive, clock)
    with pytest.raises(InvalidInput):
        hive.tasks.finish(bot_id, [Report(task_id, 1, result="{}", ran_s=ran_s)], me)


def test_a_started_task_keeps_its_start_and_records_no_ran_s(hive: Hive, clock: FakeClock) -> None:
    task_id, bot_id, me = assigned(hive, clock)
    hive.tasks.start(bot_id, [Report(task_id, 1)], me)
    done = hive.tasks.finish(bot_id, [Report(task_id, 1, result="{}", ran_s=0.5)], me)
    [(_, event)] = done.recorded
    assert event.ran_s is None


def test_learning_times_a_one_event_run_by_its_ran_s(hive: Hive, clock: FakeClock) -> None:
    task_id, bot_id, me = assigned(hive, clock)
    done = hive.tasks.finish(bot_id, [Report(task_id, 1, result="{}", ran_s=0.25)], me)
    [(_, event)] = done.recorded
    _, outcome = follow(Run("noop", bot_id), event)
    assert outcome is not None and outcome.succeeded
    assert outcome.duration_s == pytest.approx(0.25)
    assert outcome.at - timedelta(seconds=0.25) > hive.get(Task, task_id).created_on


# Task.Succeeded and Task.Failed exactly as the code before ran_s stored them (captured).
V1_TASK = UUID("1e5c8a2f-3b7d-4c1e-9f0a-6d2b8e4c7a10")
V1_FINISHES = [
    (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-02T11:38:07.944852+00:00"},'
        b'"actor":"bot:6b0dfef1-a119-4a13-8385-30c2dc4038b5",'
        b'"request_id":"bot-26636020db8b4a03bde23d62cd599309","fencing_token":1,"result":"{}"}'
    ),
]


def test_a_finish_stored_by_the_old_code_still_loads(hive: Hive) -> None:
    hive.tasks.submit([TaskSpec("noop")], ALICE)  # its Submitted, stored as now, for V1_TASK
    submitted = hive.recorder.select_notifications(1, 10)[0]
    hive.recorder.insert_events(
        [
            StoredEvent(V1_TASK, 1, submitted.topic, submitted.state),
            StoredEvent(
                V1_TASK,
                2,
                "domain.tasks:Task.Assigned",
                b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-02T11:38:07+00:00"},'
                b'"actor":"engine:dispatcher","request_id":"round-1",'
                b'"bot_id":{"_type_":"uuid_hex","_data_":"6b0dfef1a1194a13838530c2dc4038b5"},'
                b'"fencing_token":1,"why":{}}',
            ),
            StoredEvent(
                V1_TASK,
                3,
                "domain.tasks:Task.Started",
                b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-02T11:38:07.5+00:00"},'
                b'"actor":"bot:6b0dfef1-a119-4a13-8385-30c2dc4038b5","request_id":"r",'
                b'"fencing_token":1}',
            ),
            StoredEvent(V1_TASK, 4, "domain.tasks:Task.Succeeded", V1_FINISHES[0]),
        ]
    )
    [*_, finish] = hive.history(V1_TASK)
    assert isinstance(finish, Task.Succeeded) and finish.ran_s is None
    assert hive.get(Task, V1_TASK).state is TaskState.SUCCEEDED
