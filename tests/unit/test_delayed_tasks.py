"""Delayed tasks: the event's contract (old events still load), the rules, the live index.

The live index runs on an injected clock: the test moves time by hand, never sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.cause import Cause
from domain.errors import InvalidInput
from domain.hive import Hive, TaskSpec
from domain.tasks import Task, TaskState
from runtime.live import Changes, LiveIndex
from runtime.loops import MIN_WAIT_S, Loop
from tests.clock import T0, FakeClock

ALICE = Cause("alice", "req-1")

# Task.Submitted exactly as the code before class_version 2 stored it (captured from it).
V1_TASK_ID = UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
V1_SUBMITTED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-02T03:04:05+00:00"},'
    b'"originator_topic":"domain.tasks:Task","actor":"alice","request_id":"req-1",'
    b'"type":"code","priority":7,"capabilities":["code"],"payload":"{\\"n\\":1}",'
    b'"idempotency_key":null}'
)


def test_a_submission_stored_by_the_old_code_still_loads(hive: Hive) -> None:
    hive.recorder.insert_events(
        [StoredEvent(V1_TASK_ID, 1, "domain.tasks:Task.Submitted", V1_SUBMITTED)]
    )
    task = hive.get(Task, V1_TASK_ID)
    assert (task.type, task.priority, task.payload) == ("code", 7, '{"n":1}')
    assert task.not_before is None and task.schedule_id is None
    assert task.state is TaskState.PENDING


def test_not_before_is_kept_in_utc_and_survives_the_log(hive: Hive) -> None:
    berlin = timezone(timedelta(hours=1))
    due = datetime(2030, 1, 1, 12, 0, tzinfo=berlin)
    task = hive.tasks.submit([TaskSpec("code", not_before=due)], ALICE).items[0].task
    stored = hive.get(Task, task.id)
    assert stored.not_before == due and stored.not_before.tzinfo is UTC


@pytest.mark.parametrize(
    ("not_before", "message"),
    [
        (datetime(2030, 1, 2, 9, 0), "time zone offset"),
        (T0 + timedelta(days=366, seconds=1), "366 days"),
    ],
)
def test_naive_or_too_distant_not_before_is_refused(
    hive: Hive, not_before: datetime, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        hive.tasks.submit([TaskSpec("code", not_before=not_before)], ALICE)
    assert hive.recorder.max_notification_id() in (None, 0)


def test_live_index_holds_a_delayed_task_back_until_it_is_due(hive: Hive, clock: FakeClock) -> None:
    index = LiveIndex(clock=clock)
    heard: list[Changes] = []
    index.listeners.append(heard.append)
    hive.listeners.append(index.apply)
    later = hive.tasks.submit([TaskSpec("code", not_before=T0 + timedelta(minutes=5))], ALICE)
    sooner = hive.tasks.submit([TaskSpec("code", not_before=T0 + timedelta(minutes=1))], ALICE)
    now = hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    assert [t.task_id for t in index.pending(10)] == [now]
    assert index.next_due() == T0 + timedelta(minutes=1)
    assert index.release_due() == 0

    heard.clear()
    clock.now = T0 + timedelta(minutes=1)
    assert index.release_due() == 1
    assert heard and heard[-1].work
    # once due it queues like any other pending task, waiting from when it fell due (a
    # delay earns no priority: aging.py), so the task pending since T0 goes first
    assert [t.task_id for t in index.pending(10)] == [now, sooner.items[0].task.id]
    assert index.next_due() == T0 + timedelta(minutes=5)

    clock.now = T0 + timedelta(hours=1)
    assert index.release_due() == 1
    assert len(index.pending(10)) == 3 and index.next_due() is None
    assert later.items[0].task.id in {t.task_id for t in index.pending(10)}


def test_a_delayed_task_cancelled_before_it_is_due_is_never_offered(
    hive: Hive, clock: FakeClock
) -> None:
    index = LiveIndex(clock=clock)
    hive.listeners.append(index.apply)
    task = hive.tasks.submit([TaskSpec("code", not_before=T0 + timedelta(minutes=1))], ALICE)
    task_id = task.items[0].task.id
    hive.tasks.cancel(task_id, "not needed", ALICE)
    assert task_id not in index.tasks and index.next_due() is None
    clock.now = T0 + timedelta(minutes=2)
    assert index.release_due() == 0
    assert index.pending(10) == []


def test_a_task_due_already_goes_straight_to_its_queue(hive: Hive, clock: FakeClock) -> None:
    index = LiveIndex(clock=clock)
    hive.listeners.append(index.apply)
    past = hive.tasks.submit([TaskSpec("code", not_before=T0 - timedelta(hours=1))], ALICE)
    assert [t.task_id for t in index.pending(10)] == [past.items[0].task.id]
    assert index.next_due() is None


@pytest.mark.parametrize(
    ("hint", "waits"), [(None, 10.0), (0.25, 0.25), (30.0, 10.0), (-3.0, MIN_WAIT_S)]
)
def test_a_loop_waits_no_longer_than_its_hint_says(hint: float | None, waits: float) -> None:
    loop = Loop("dispatcher", lambda: 0, interval=10.0, wait_hint=lambda: hint)
    assert loop._timeout() == waits
