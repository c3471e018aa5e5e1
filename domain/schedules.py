"""A schedule: a task template the hive submits on a cron expression or a fixed interval.

Life: active <-> paused, and deleted from either (for good). Every tick is decided exactly
once — fired, buffered (waiting for the previous run) or skipped — by the pure policy in
``domain/policies/schedule.py``; the schedule records the decision, and ``last_tick`` only
moves forward, so a tick can never be decided twice. Firing a tick submits a task whose id
is derived from (schedule, tick), in the same save as the ``Fired`` event: two engines
deciding the same tick collide on the schedule's version and on that id, and one loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.names import check_short_name
from domain.policies import triggers
from domain.policies.schedule import (
    INSTANT,
    MAX_CATCHUP_LIMIT,
    MIN_CATCHUP_LIMIT,
    Catchup,
    Decision,
    Overlap,
    Skip,
    Timing,
    next_tick,
)
from domain.tasks import check_task_fields

SCHEDULED_TASKS = UUID("3c6f1d2a-8e4b-4f7a-9b1c-5d2e7f8a9b0c")  # namespace of fired tasks' ids
MAX_START_AHEAD = timedelta(days=366)


def fired_task_id(schedule_id: UUID, tick: datetime) -> UUID:
    """The id of the task a schedule fires for a tick: the same however often it is tried."""
    return uuid5(SCHEDULED_TASKS, f"{schedule_id}\n{tick.astimezone(UTC).isoformat()}")


class ScheduleState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


@dataclass(frozen=True)
class TaskTemplate:
    """The fields of each task the schedule submits (checked like a task's own)."""

    type: str
    priority: int = 5
    capabilities: list[str] | None = None
    payload: str = "{}"  # canonical JSON text


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    template: TaskTemplate
    cron: str | None = None
    timezone: str | None = None  # cron only; default UTC
    every_s: int | None = None
    start_at: datetime | None = None  # default: when it is created
    overlap: str = Overlap.SKIP
    catchup: str = Catchup.RUN_ONCE
    catchup_limit: int = 10


@dataclass(frozen=True)
class Firing:
    """A tick the schedule fired: the task to submit with it, in the same save."""

    tick: datetime
    task_id: UUID


class Schedule(HiveAggregate):
    class Created(HiveAggregate.Created):
        name: str
        cron: str | None
        timezone: str | None
        every_s: int | None
        start_at: datetime
        task_type: str
        priority: int
        capabilities: list[str]
        payload: str  # canonical JSON text
        overlap: str
        catchup: str
        catchup_limit: int

    class Fired(HiveAggregate.Event):
        tick: datetime
        task_id: UUID

        def apply(self, schedule: Schedule) -> None:
            schedule.last_tick = self.tick
            schedule.last_task_id = self.task_id
            schedule.fired += 1

    class Released(HiveAggregate.Event):
        """The buffered tick fired: the run before it finished."""

        tick: datetime
        task_id: UUID

        def apply(self, schedule: Schedule) -> None:
            schedule.buffered = None
            schedule.last_task_id = self.task_id
            schedule.fired += 1

    class Buffered(HiveAggregate.Event):
        tick: datetime

        def apply(self, schedule: Schedule) -> None:
            schedule.last_tick = schedule.buffered = self.tick

    class Skipped(HiveAggregate.Event):
        """``count`` ticks from ``first`` to ``tick`` were dropped, for ``reason``."""

        first: datetime
        tick: datetime
        count: int
        reason: str

        def apply(self, schedule: Schedule) -> None:
            schedule.last_tick = self.tick
            schedule.skipped += self.count

    class Paused(HiveAggregate.Event):
        def apply(self, schedule: Schedule) -> None:
            schedule.state = ScheduleState.PAUSED

    class Resumed(HiveAggregate.Event):
        def apply(self, schedule: Schedule) -> None:
            schedule.state = ScheduleState.ACTIVE
            schedule.not_before = max(schedule.not_before, self.timestamp)

    class Deleted(HiveAggregate.Event):
        def apply(self, schedule: Schedule) -> None:
            schedule.state = ScheduleState.DELETED
            schedule.buffered = None

    def __init__(
        self,
        name: str,
        cron: str | None,
        timezone: str | None,
        every_s: int | None,
        start_at: datetime,
        task_type: str,
        priority: int,
        capabilities: list[str],
        payload: str,
        overlap: str,
        catchup: str,
        catchup_limit: int,
        actor: str,
    ) -> None:
        self.name = name
        self.cron = cron
        self.timezone = timezone
        self.every_s = every_s
        self.start_at = start_at
        self.template = TaskTemplate(task_type, priority, capabilities, payload)
        self.overlap = Overlap(overlap)
        self.catchup = Catchup(catchup)
        self.catchup_limit = catchup_limit
        self.created_by = actor
        self.state = ScheduleState.ACTIVE
        self.not_before = max(start_at, self.created_on)  # no tick before it was made
        self.last_tick: datetime | None = None
        self.buffered: datetime | None = None
        self.last_task_id: UUID | None = None
        self.fired = 0
        self.skipped = 0

    # -- reading ----------------------------------------------------------------------

    @property
    def trigger(self) -> triggers.Trigger:
        if self.cron is not None:
            return triggers.Cron(self.cron, self.timezone or "UTC")
        assert self.every_s is not None
        return triggers.Interval(self.every_s, self.start_at)

    @property
    def timing(self) -> Timing:
        return Timing(
            trigger=self.trigger,
            overlap=self.overlap,
            catchup=self.catchup,
            catchup_limit=self.catchup_limit,
            not_before=self.not_before,
            last_tick=self.last_tick,
            buffered=self.buffered,
            active=self.state is ScheduleState.ACTIVE,
        )

    @property
    def next_tick(self) -> datetime | None:
        return next_tick(self.timing) if self.state is ScheduleState.ACTIVE else None

    # -- commands ---------------------------------------------------------------------

    @classmethod
    def create(
        cls, *, schedule_id: UUID, spec: ScheduleSpec, cause: Cause, at: datetime
    ) -> Schedule:
        check_short_name("schedule name", spec.name)
        start = _check_start(spec.start_at, at)
        trigger = _check_trigger(spec, start)
        t = spec.template
        capabilities = check_task_fields(t.type, t.priority, t.capabilities, t.payload)
        if not isinstance(spec.catchup_limit, int) or not (
            MIN_CATCHUP_LIMIT <= spec.catchup_limit <= MAX_CATCHUP_LIMIT
        ):
            raise InvalidInput(f"catchup_limit must be {MIN_CATCHUP_LIMIT}..{MAX_CATCHUP_LIMIT}")
        if next(trigger.ticks_after(max(start, at) - INSTANT), None) is None:
            raise InvalidInput("the cron expression never matches a date")
        return cls._open(
            cls.Created,
            id=schedule_id,
            cause=cause,
            at=at,
            name=spec.name,
            cron=trigger.expression if isinstance(trigger, triggers.Cron) else None,
            timezone=trigger.timezone if isinstance(trigger, triggers.Cron) else None,
            every_s=trigger.every_s if isinstance(trigger, triggers.Interval) else None,
            start_at=start,
            task_type=t.type,
            priority=t.priority,
            capabilities=capabilities,
            payload=t.payload,
            overlap=str(_choice(Overlap, "overlap", spec.overlap)),
            catchup=str(_choice(Catchup, "catchup", spec.catchup)),
            catchup_limit=spec.catchup_limit,
        )

    def record(self, decision: Decision, cause: Cause, at: datetime) -> list[Firing]:
        """Record what the policy decided; returns the tasks to submit in the same save."""
        if decision.empty:
            return []
        self._check_active()
        fired: list[Firing] = []
        if decision.release is not None:
            if decision.release != self.buffered:
                raise InvalidTransition("no such tick is buffered", schedule_id=self.id)
            fired.append(Firing(decision.release, fired_task_id(self.id, decision.release)))
            self._record(self.Released, cause, at, tick=decision.release, task_id=fired[-1].task_id)
        if decision.missed is not None:
            self._skip(decision.missed, cause, at)
        for tick in decision.fire:
            self._check_forward(tick)
            fired.append(Firing(tick, fired_task_id(self.id, tick)))
            self._record(self.Fired, cause, at, tick=tick, task_id=fired[-1].task_id)
        if decision.buffer is not None:
            self._check_forward(decision.buffer)
            if self.buffered is not None:
                raise InvalidTransition("the buffer is full", schedule_id=self.id)
            self._record(self.Buffered, cause, at, tick=decision.buffer)
        if decision.overlapped is not None:
            self._skip(decision.overlapped, cause, at)
        return fired

    def pause(self, cause: Cause, at: datetime) -> None:
        self._check_active()
        self._record(self.Paused, cause, at)

    def resume(self, cause: Cause, at: datetime) -> None:
        if self.state is not ScheduleState.PAUSED:
            raise InvalidTransition(f"schedule is {self.state}, not paused", schedule_id=self.id)
        self._record(self.Resumed, cause, at)

    def delete(self, cause: Cause, at: datetime) -> None:
        if self.state is ScheduleState.DELETED:
            raise InvalidTransition("schedule is already deleted", schedule_id=self.id)
        self._record(self.Deleted, cause, at)

    # -- rules ------------------------------------------------------------------------

    def _check_active(self) -> None:
        if self.state is not ScheduleState.ACTIVE:
            raise InvalidTransition(f"schedule is {self.state}, not active", schedule_id=self.id)

    def _check_forward(self, tick: datetime) -> None:
        if self.last_tick is not None and tick <= self.last_tick:
            raise InvalidTransition("ticks only move forward", schedule_id=self.id)

    def _skip(self, skip: Skip, cause: Cause, at: datetime) -> None:
        self._check_forward(skip.first)
        self._record(
            self.Skipped,
            cause,
            at,
            first=skip.first,
            tick=skip.last,
            count=skip.count,
            reason=str(skip.reason),
        )


def _check_start(start_at: datetime | None, at: datetime) -> datetime:
    if start_at is None:
        return at
    if start_at.utcoffset() is None:
        raise InvalidInput("start_at must carry a time zone offset")
    if start_at - at > MAX_START_AHEAD:
        raise InvalidInput(f"start_at must be at most {MAX_START_AHEAD.days} days ahead")
    return start_at.astimezone(UTC)


def _check_trigger(spec: ScheduleSpec, start: datetime) -> triggers.Trigger:
    if (spec.cron is None) == (spec.every_s is None):
        raise InvalidInput("a schedule needs exactly one trigger: cron or every_s")
    if spec.cron is not None:
        return triggers.cron(spec.cron, spec.timezone or "UTC")
    if spec.timezone is not None:
        raise InvalidInput("timezone applies to cron schedules only (every_s is real time)")
    assert spec.every_s is not None
    return triggers.interval(spec.every_s, start)


def _choice(kind: type[Overlap] | type[Catchup], what: str, value: str) -> Overlap | Catchup:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{what} must be one of {', '.join(kind)}") from None
