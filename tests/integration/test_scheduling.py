"""Schedules on real PostgreSQL, on a clock the test moves: every tick decided exactly once.

Two schedulers (two Hives, as two engines would have) step at once over many ticks and
still fire each tick once; a scheduler started later in (injected) time catches up as its
schedule says and loses nothing; a whole node shows overlap, pause, resume and delete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from api.bootstrap import Node, rebuild_views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report
from domain.policies.retry import RetryPolicy
from domain.policies.routing import Assignment
from domain.schedules import Schedule, ScheduleSpec, TaskTemplate
from domain.tasks import Task, TaskState
from projections.schedule_reads import ScheduleReads
from runtime.live import LiveIndex
from runtime.scheduler import Scheduler
from tests.clock import T0, FakeClock
from tests.integration.helpers import hive_on, runner, snapshot
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


class Engine:
    """What an engine brings to scheduling: a Hive, a live index fed by its writes, a
    scheduler reading the schedules view (kept by a runner of its own)."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        from psycopg_pool import ConnectionPool

        self.hive = hive_on(url)
        self.hive.clock = clock
        self.index = LiveIndex(clock=clock)
        self.hive.listeners.append(self.index.apply)
        self.pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=2, open=True)
        self.scheduler = Scheduler(
            self.hive, self.index, ScheduleReads(self.pool).timetable, clock=clock
        )
        self.runner = runner(url, self.hive, "schedules")

    def step(self) -> int:
        self.runner.catch_up()
        return self.scheduler.run_once()

    def close(self) -> None:
        self.pool.close()
        self.hive.close()


@pytest.fixture
def engines(db_url: str, clock: FakeClock) -> Iterator[list[Engine]]:
    made = [Engine(db_url, clock), Engine(db_url, clock)]
    yield made
    for engine in made:
        engine.close()


def decisions(hive: Hive, schedule_id: UUID) -> list[Any]:
    notes = hive.recorder.select_notifications(start=1, limit=1_000_000)
    events = [hive.mapper.to_domain_event(n) for n in notes]
    return [e for e in events if e.originator_id == schedule_id]


def fired_ticks(hive: Hive, schedule_id: UUID) -> list[datetime]:
    return [
        e.tick
        for e in decisions(hive, schedule_id)
        if isinstance(e, Schedule.Fired | Schedule.Released)
    ]


def scheduled_tasks(hive: Hive, schedule_id: UUID) -> list[UUID]:
    notes = hive.recorder.select_notifications(start=1, limit=1_000_000)
    events = [hive.mapper.to_domain_event(n) for n in notes]
    return [
        e.originator_id
        for e in events
        if isinstance(e, Task.Submitted) and e.schedule_id == schedule_id
    ]


def every(seconds: int, **kw: Any) -> ScheduleSpec:
    return ScheduleSpec(
        name=kw.pop("name", "job"), template=TaskTemplate("code"), every_s=seconds, **kw
    )


def test_two_engines_stepping_at_once_fire_each_tick_exactly_once(
    engines: list[Engine], clock: FakeClock
) -> None:
    first = engines[0]
    spec = {"overlap": "allow_all", "catchup": "run_all", "catchup_limit": 1000}
    ids = [
        first.hive.schedules.create(every(60, **spec), ALICE).items[0].id,
        first.hive.schedules.create(every(90, **spec), ALICE).items[0].id,
        first.hive.schedules.create(
            ScheduleSpec(name="cron", template=TaskTemplate("code"), cron="* * * * *", **spec),
            ALICE,
        )
        .items[0]
        .id,
    ]
    rounds = 40
    start, done = threading.Barrier(3), threading.Barrier(3)
    failures: list[BaseException] = []
    recorded = {id(e): 0 for e in engines}

    def run(engine: Engine) -> None:
        try:
            for _ in range(rounds):
                start.wait(timeout=30)
                recorded[id(engine)] += engine.step() + engine.step()
                done.wait(timeout=30)
        except BaseException as e:  # reported below: a thread's failure must fail the test
            failures.append(e)
            start.abort()
            done.abort()

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for _ in range(rounds):
        start.wait(timeout=30)
        done.wait(timeout=30)
        clock.advance(timedelta(seconds=30))
    for t in threads:
        t.join(timeout=30)
    assert not failures, failures
    assert all(recorded.values()), "both engines should have won some ticks"
    first.hive.schedules.fire(ids, Cause.engine("scheduler", "final"))  # what is still due

    end = clock()
    for schedule_id, step in zip(ids, (60, 90, 60), strict=True):
        expected = int((end - T0).total_seconds()) // step + 1
        ticks = fired_ticks(first.hive, schedule_id)
        assert ticks == sorted(set(ticks)), "a tick fired twice"
        assert len(ticks) == expected
        tasks = scheduled_tasks(first.hive, schedule_id)
        assert len(tasks) == len(set(tasks)) == expected
        assert first.hive.get(Schedule, schedule_id).fired == expected


@pytest.mark.parametrize(
    ("catchup", "limit", "fired", "skipped"),
    [("skip", 10, 0, 12), ("run_once", 10, 1, 11), ("run_all", 5, 5, 7), ("run_all", 1000, 12, 0)],
)
def test_an_engine_started_later_catches_up_as_the_schedule_says(
    db_url: str, clock: FakeClock, catchup: str, limit: int, fired: int, skipped: int
) -> None:
    early = Engine(db_url, clock)
    try:
        spec = every(300, catchup=catchup, catchup_limit=limit, overlap="allow_all")
        schedule_id = early.hive.schedules.create(spec, ALICE).items[0].id
        assert early.step() > 0
        assert fired_ticks(early.hive, schedule_id) == [T0]
    finally:
        early.close()

    clock.advance(timedelta(minutes=62))  # down: ticks at +5 .. +60 min, the last 2 min late
    later = Engine(db_url, clock)
    try:
        while later.step():
            pass
        schedule = later.hive.get(Schedule, schedule_id)
        ticks = fired_ticks(later.hive, schedule_id)
        assert len(ticks) == 1 + fired and schedule.skipped == skipped
        assert ticks[1:] == [T0 + timedelta(minutes=5 * k) for k in range(13 - fired, 13)]
        assert schedule.last_tick == T0 + timedelta(minutes=60)
        assert schedule.next_tick == T0 + timedelta(minutes=65)
        assert (schedule.fired - 1) + schedule.skipped == 12, "a missed tick was lost"
    finally:
        later.close()


def test_overlap_policies_with_the_previous_run_still_open(node: Node, clock: FakeClock) -> None:
    hive = node.hive
    made = {
        policy: hive.schedules.create(
            every(60, name=policy.replace("_", "-"), overlap=policy), ALICE
        )
        .items[0]
        .id
        for policy in ("skip", "buffer_one", "allow_all")
    }
    for schedule_id in made.values():
        wait_for(lambda s=schedule_id: fired_ticks(hive, s) == [T0], what="the first tick")

    clock.advance(timedelta(seconds=60))  # nobody works: every first run is still open
    second = T0 + timedelta(seconds=60)
    wait_for(lambda: fired_ticks(hive, made["allow_all"]) == [T0, second], what="allow_all")
    wait_for(lambda: hive.get(Schedule, made["buffer_one"]).buffered == second, what="buffered")
    wait_for(lambda: hive.get(Schedule, made["skip"]).skipped == 1, what="skip")
    assert fired_ticks(hive, made["skip"]) == [T0]
    [skipped] = [e for e in decisions(hive, made["skip"]) if isinstance(e, Schedule.Skipped)]
    assert (skipped.reason, skipped.tick, skipped.count) == ("overlap", second, 1)

    # the buffered tick fires as soon as the run before it ends, before the next tick is due
    [first_run] = scheduled_tasks(hive, made["buffer_one"])
    hive.tasks.cancel(first_run, "done by hand", ALICE)
    wait_for(
        lambda: fired_ticks(hive, made["buffer_one"]) == [T0, second],
        timeout=5,
        what="the buffered tick to fire once the previous run ended",
    )
    assert clock() == second


def test_pause_resume_and_delete(node: Node, clock: FakeClock) -> None:
    hive = node.hive
    schedule_id = hive.schedules.create(every(60, overlap="allow_all"), ALICE).items[0].id
    wait_for(lambda: fired_ticks(hive, schedule_id) == [T0], what="the first tick")
    hive.schedules.pause(schedule_id, ALICE)
    clock.advance(timedelta(minutes=5, seconds=30))
    resumed_at = clock()
    hive.schedules.resume(schedule_id, ALICE)  # ticks while paused are never run
    assert hive.get(Schedule, schedule_id).next_tick == T0 + timedelta(minutes=6)
    clock.advance(timedelta(seconds=30))
    wait_for(
        lambda: fired_ticks(hive, schedule_id) == [T0, T0 + timedelta(minutes=6)],
        what="the first tick after the resume",
    )
    assert resumed_at < T0 + timedelta(minutes=6)
    hive.schedules.delete(schedule_id, ALICE)
    clock.advance(timedelta(minutes=10))
    reads = node.schedules
    wait_for(lambda: (reads.get(schedule_id) or object()).state == "deleted", what="the view")  # type: ignore[attr-defined]
    assert fired_ticks(hive, schedule_id) == [T0, T0 + timedelta(minutes=6)]
    assert node.loop("scheduler").step() == 0


def test_the_schedules_view_agrees_with_the_aggregates_and_equals_a_rebuild(
    db_url: str, engines: list[Engine], clock: FakeClock
) -> None:
    hive = engines[0].hive
    buffered = hive.schedules.create(every(60, name="buffered", overlap="buffer_one"), ALICE)
    nightly = ScheduleSpec(
        name="nightly",
        template=TaskTemplate("report", payload='"text"'),
        cron="30 2 * * *",
        timezone="Europe/Berlin",
    )
    cron = hive.schedules.create(nightly, ALICE)
    paused = hive.schedules.create(every(600, name="paused"), ALICE)
    gone = hive.schedules.create(every(60, name="gone"), ALICE)
    ids = [c.items[0].id for c in (buffered, cron, paused, gone)]
    for minutes in range(4):
        clock.advance(timedelta(minutes=minutes))
        hive.schedules.fire(ids, Cause.engine("scheduler", f"r{minutes}"))
    hive.schedules.pause(ids[2], ALICE)
    hive.schedules.delete(ids[3], ALICE)
    runner(db_url, hive, "schedules", page=3).catch_up()

    reads = ScheduleReads(engines[0].pool)
    for schedule_id in ids:
        row, schedule = reads.get(schedule_id), hive.get(Schedule, schedule_id)
        assert row is not None
        assert (row.state, row.fired, row.skipped) == (
            str(schedule.state),
            schedule.fired,
            schedule.skipped,
        )
        assert (row.last_tick, row.buffered_tick, row.last_task_id) == (
            schedule.last_tick,
            schedule.buffered,
            schedule.last_task_id,
        )
        assert row.next_tick == schedule.next_tick
    assert reads.get(ids[1]).payload == "text"  # type: ignore[union-attr]
    incremental = snapshot(db_url)
    rebuild_views(db_url, Settings(), "schedules")
    assert snapshot(db_url) == incremental


def test_a_retrying_run_is_unfinished_for_overlap_and_retries_never_make_ticks(
    db_url: str, clock: FakeClock
) -> None:
    engine = Engine(db_url, clock)
    try:
        hive = engine.hive
        hive.tasks.policies = lambda _: RetryPolicy(2, initial_backoff_s=10.0, jitter=0.0)
        bot, _, _ = hive.fleet.register(
            name="b", capabilities=["code"], max_concurrency=9, version_label="v1", cause=ALICE
        )
        made = {
            policy: hive.schedules.create(
                every(60, name=policy.replace("_", "-"), overlap=policy), ALICE
            )
            .items[0]
            .id
            for policy in ("buffer_one", "skip")
        }
        engine.step()
        runs = {p: scheduled_tasks(hive, s) for p, s in made.items()}
        assert all(len(r) == 1 for r in runs.values())

        def attempt_fails() -> None:
            ids = [r[0] for r in runs.values()]
            hive.tasks.assign([Assignment(t, bot.id, {}) for t in ids], ALICE)
            tasks = hive.load_many(Task, ids)
            who = Cause(f"bot:{bot.id}", "r")
            started = [Report(t, tasks[t].fencing_token) for t in ids]
            hive.tasks.start(bot.id, started, who)
            failed = [Report(r.task_id, r.fencing_token, error="boom") for r in started]
            hive.tasks.finish(bot.id, failed, who)

        clock.advance(60.0)  # the first runs are open: a tick buffered, a tick skipped
        engine.step()
        assert hive.get(Schedule, made["buffer_one"]).buffered == T0 + timedelta(seconds=60)
        engine.scheduler.wake.clear()
        attempt_fails()  # retrying: pending again, still unfinished
        assert all(hive.get(Task, r[0]).state is TaskState.PENDING for r in runs.values())
        assert not engine.scheduler.wake.is_set(), "a retry looked like the run's end"
        assert engine.step() == 0
        assert hive.get(Schedule, made["buffer_one"]).buffered is not None

        clock.advance(10.0)  # the backoff: the second and last attempt fails
        attempt_fails()
        assert all(hive.get(Task, r[0]).state is TaskState.DEAD for r in runs.values())
        assert engine.scheduler.wake.is_set(), "the dead letter did not wake the scheduler"
        assert engine.step() > 0  # the buffered tick fires now, before the next tick
        buffered = made["buffer_one"]
        assert fired_ticks(hive, buffered) == [T0, T0 + timedelta(seconds=60)]

        clock.advance(50.0)  # the next tick: nothing lost, nothing doubled
        engine.step()  # (the buffered tick's run is open: this one waits in the buffer)
        assert fired_ticks(hive, buffered) == [T0, T0 + timedelta(seconds=60)]
        assert hive.get(Schedule, buffered).buffered == T0 + timedelta(seconds=120)
        assert len(scheduled_tasks(hive, buffered)) == 2  # retries submit nothing
        skipping = hive.get(Schedule, made["skip"])
        assert fired_ticks(hive, made["skip"]) == [T0, T0 + timedelta(seconds=120)]
        assert (skipping.fired, skipping.skipped) == (2, 1)
    finally:
        engine.close()
