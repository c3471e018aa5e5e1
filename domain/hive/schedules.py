"""The schedules room: create, pause, resume, delete, and fire due ticks with their tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.cause import Cause
from domain.errors import ConcurrentUpdate
from domain.hive.commands import MAX_ATTEMPTS, Commands, Committed
from domain.policies.schedule import Overlap, due
from domain.schedules import Schedule, ScheduleSpec, ScheduleState
from domain.tasks import Task


class ScheduleCommands(Commands):
    def create_schedule(self, spec: ScheduleSpec, cause: Cause) -> Committed[Schedule]:
        at = self.clock()
        schedule = Schedule.create(schedule_id=self.new_id(), spec=spec, cause=cause, at=at)
        return Committed.of([schedule], self._save([schedule]))

    def pause_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.pause(cause, at))

    def resume_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.resume(cause, at))

    def delete_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.delete(cause, at))

    def fire_schedules(self, schedule_ids: Sequence[UUID], cause: Cause) -> Committed[Schedule]:
        """Decide the due ticks of these schedules now and record each decision together
        with the tasks it fires, all in one save. Two engines deciding the same tick
        collide on the schedule's version (and the task's id): the loser decides again
        from the log and finds the tick done. Returns every schedule found, as it now is.
        """
        ids = list(dict.fromkeys(schedule_ids))
        from_log = False  # first from the cache; a save catches staleness, a no-op re-checks
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                schedules = self._load(Schedule, ids, from_log=from_log)
                at = self.clock()
                try:
                    tasks = [t for s in schedules.values() for t in self._fire(s, cause, at)]
                    dirty = [s for s in schedules.values() if s.pending_events]
                    if not dirty and not from_log:
                        from_log = True
                        continue
                    return Committed.of(list(schedules.values()), self._save([*dirty, *tasks]))
                except IntegrityError:
                    self.cache.forget(ids)
                    from_log = True
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

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
        task = self._load(Task, [schedule.last_task_id], from_log=True).get(schedule.last_task_id)
        return task is not None and not task.state.is_final
