"""The Hive's schedule commands on the in-memory recorder, with a clock the test moves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.hive import Hive, Report
from domain.policies.routing import Assignment
from domain.schedules import Schedule, ScheduleSpec, ScheduleState, TaskTemplate, fired_task_id
from domain.tasks import Task, TaskState
from tests.clock import T0, FakeClock

ALICE = Cause("alice", "req-1")
ENGINE = Cause.engine("scheduler", "round-1")


def spec(**kw: Any) -> ScheduleSpec:
    fields: dict[str, Any] = {"name": "nightly", "template": TaskTemplate("code"), "every_s": 60}
    fields.update(kw)
    return ScheduleSpec(**fields)


def fire(hive: Hive, schedule: Schedule) -> list[Task]:
    committed = hive.schedules.fire([schedule.id], ENGINE)
    return [e for _, e in committed.recorded if isinstance(e, Task.Submitted)]


def test_a_fired_tick_submits_the_template_as_a_task_named_by_schedule_and_tick(
    hive: Hive, clock: FakeClock
) -> None:
    template = TaskTemplate("report", priority=8, capabilities=["pdf"], payload='{"a":1}')
    schedule = hive.schedules.create(spec(template=template, overlap="allow_all"), ALICE).items[0]
    [submitted] = fire(hive, schedule)
    assert submitted.originator_id == fired_task_id(schedule.id, T0)
    task = hive.get(Task, submitted.originator_id)
    assert (task.type, task.priority, task.capabilities, task.payload) == (
        "report",
        8,
        ["pdf"],
        '{"a":1}',
    )
    assert task.schedule_id == schedule.id and task.submitted_by == "engine:scheduler"
    assert fire(hive, schedule) == []  # the same instant again: nothing more is due
    clock.now = T0 + timedelta(seconds=60)
    assert [e.originator_id for e in fire(hive, schedule)] == [
        fired_task_id(schedule.id, T0 + timedelta(seconds=60))
    ]
    assert hive.get(Schedule, schedule.id).fired == 2


def test_overlap_is_judged_by_the_previous_task_as_the_log_has_it(
    hive: Hive, clock: FakeClock
) -> None:
    schedule = hive.schedules.create(spec(overlap="buffer_one"), ALICE).items[0]
    [first] = fire(hive, schedule)
    clock.now = T0 + timedelta(seconds=60)
    assert fire(hive, schedule) == []
    assert hive.get(Schedule, schedule.id).buffered == clock.now
    bot, _, _ = hive.fleet.register(
        name="b", capabilities=["code"], max_concurrency=1, version_label="1", cause=ALICE
    )
    hive.tasks.assign([Assignment(first.originator_id, bot.id, {})], ENGINE)
    hive.tasks.start(bot.id, [Report(first.originator_id, 1)], ALICE)
    hive.tasks.finish(bot.id, [Report(first.originator_id, 1, result="1")], ALICE)
    clock.now = T0 + timedelta(seconds=70)
    [released] = fire(hive, schedule)
    assert released.originator_id == fired_task_id(schedule.id, T0 + timedelta(seconds=60))
    assert hive.get(Task, released.originator_id).state is TaskState.PENDING


def test_pause_resume_delete_and_the_transitions_they_refuse(hive: Hive, clock: FakeClock) -> None:
    schedule = hive.schedules.create(spec(), ALICE).items[0]
    hive.schedules.pause(schedule.id, ALICE)
    with pytest.raises(InvalidTransition, match="not active"):
        hive.schedules.pause(schedule.id, ALICE)
    clock.now = T0 + timedelta(minutes=10)
    assert fire(hive, schedule) == []
    hive.schedules.resume(schedule.id, ALICE)
    with pytest.raises(InvalidTransition, match="not paused"):
        hive.schedules.resume(schedule.id, ALICE)
    assert hive.get(Schedule, schedule.id).next_tick == T0 + timedelta(minutes=10)
    hive.schedules.delete(schedule.id, ALICE)
    for command in (hive.schedules.pause, hive.schedules.resume, hive.schedules.delete):
        with pytest.raises(InvalidTransition):
            command(schedule.id, ALICE)
    clock.now = T0 + timedelta(hours=1)
    assert fire(hive, schedule) == []
    assert hive.get(Schedule, schedule.id).state is ScheduleState.DELETED


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"every_s": None}, "exactly one trigger"),
        ({"cron": "* * * * *"}, "exactly one trigger"),
        ({"every_s": 60, "timezone": "UTC"}, "cron schedules only"),
        ({"every_s": None, "cron": "0 25 * * *"}, "bad hour field"),
        ({"every_s": None, "cron": "0 9 * * *", "timezone": "Nowhere/Special"}, "time zone"),
        ({"every_s": 0}, "every_s"),
        ({"catchup_limit": 0}, "catchup_limit"),
        ({"catchup_limit": 1001}, "catchup_limit"),
        ({"overlap": "sometimes"}, "overlap must be one of"),
        ({"catchup": "all"}, "catchup must be one of"),
        ({"name": "Nightly Job"}, "schedule name"),
        ({"start_at": datetime(2030, 1, 2)}, "time zone offset"),
        ({"start_at": T0 + timedelta(days=367)}, "366 days"),
        ({"template": TaskTemplate("Code!")}, "task type"),
        ({"template": TaskTemplate("code", priority=10)}, "priority"),
        ({"template": TaskTemplate("code", payload='"\\u0000"')}, "NUL"),
    ],
)
def test_invalid_schedules_are_refused_and_persist_nothing(
    hive: Hive, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        hive.schedules.create(spec(**fields), ALICE)
    assert hive.recorder.max_notification_id() in (None, 0)
