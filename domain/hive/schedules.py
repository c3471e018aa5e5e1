"""The schedules room: create, pause, resume, delete, and fire due ticks with their tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cause import Cause
from domain.hive.kernel import Committed, Kernel
from domain.policies.schedule import Overlap, due
from domain.schedules import Schedule, ScheduleSpec, ScheduleState
from domain.tasks import Task


class ScheduleCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def create(self, spec: ScheduleSpec, cause: Cause) -> Committed[Schedule]:
        at = self.kernel.clock()
        schedule = Schedule.create(schedule_id=self.kernel.new_id(), spec=spec, cause=cause, at=at)
        return Committed.of([schedule], self.kernel.save([schedule]))

    def pause(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self.kernel.change(Schedule, [schedule_id], lambda s, at: s.pause(cause, at))

    def resume(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self.kernel.change(Schedule, [schedule_id], lambda s, at: s.resume(cause, at))

    def delete(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self.kernel.change(Schedule, [schedule_id], lambda s, at: s.delete(cause, at))

    def fire(self, schedule_ids: Sequence[UUID], cause: Cause) -> Committed[Schedule]:
        """Decide the due ticks of these schedules now and record each decision together
        with the tasks it fires, all in one save. Two engines deciding the same tick
        collide on the schedule's version (and the task's id): the loser decides again
        from the log and finds the tick done. Returns every schedule found, as it now is.
        """
        ids = list(dict.fromkeys(schedule_ids))
        schedules: list[Schedule] = []

        def fire(found: dict[UUID, Any], at: datetime) -> list[Any]:
            schedules[:] = [s for s in found.values() if isinstance(s, Schedule)]
            tasks = [t for s in schedules for t in self._fire(s, cause, at)]
            return [*(s for s in schedules if s.pending_events), *tasks]

        committed = self.kernel.execute(ids, fire)
        return Committed(list(schedules), committed.position, committed.recorded)

    def _fire(self, schedule: Schedule, cause: Cause, at: datetime) -> list[Task]:
        if schedule.state is not ScheduleState.ACTIVE:
            return []
        decision = due(schedule.timing, at, self._previous_run_open(schedule))
        t = schedule.template
        return [
            Task.submit(
                task_id=firing.task_id,
                type=t.type,
                priority=t.priority,
                capabilities=t.capabilities,
                payload=t.payload,
                idempotency_key=None,
                cause=cause,
                at=at,
                schedule_id=schedule.id,
            )
            for firing in schedule.record(decision, cause, at)
        ]

    def _previous_run_open(self, schedule: Schedule) -> bool:
        """Whether the last task the schedule fired is unfinished, as the log says."""
        if schedule.overlap is Overlap.ALLOW_ALL or schedule.last_task_id is None:
            return False
        last = schedule.last_task_id
        task = self.kernel.load_many(Task, [last]).get(last)
        return task is not None and not task.state.is_final
