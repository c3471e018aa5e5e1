"""The schedules view for API tests: folded from the Hive's log on every read."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import orjson

from domain.hive import Hive
from domain.schedules import Schedule
from domain.tasks import Task
from projections.rows import ScheduleRow


class LogScheduleReads:
    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    def rows(self) -> list[ScheduleRow]:
        notifications = self.hive.recorder.select_notifications(start=1, limit=1_000_000)
        seq: dict[UUID, int] = {}
        position: dict[UUID, int] = {}
        for n in notifications:
            event = self.hive.mapper.to_domain_event(n)
            if isinstance(event, Schedule.Created):
                seq[event.originator_id] = n.id
            if isinstance(event, Schedule.Event):
                position[event.originator_id] = n.id
        found = self.hive.load_many(Schedule, seq)
        return sorted((self._row(s, seq[i], position[i]) for i, s in found.items()), key=_seq)

    def get(self, schedule_id: UUID) -> ScheduleRow | None:
        return next((r for r in self.rows() if r.schedule_id == schedule_id), None)

    def list(
        self, state: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[ScheduleRow], str | None]:
        if cursor is not None and not (cursor.startswith("s") and cursor[1:].isdigit()):
            raise ValueError("cursor is not one this server gave out")
        after = int(cursor[1:]) if cursor else 0
        wanted = [r for r in self.rows() if r.seq > after and state in (None, r.state)]
        page = wanted[:limit]
        return page, (f"s{page[-1].seq}" if len(wanted) > limit else None)

    def runs_by_state(self, schedule_ids: Sequence[UUID], last: int) -> dict[UUID, dict[str, int]]:
        notifications = self.hive.recorder.select_notifications(start=1, limit=1_000_000)
        fired = [
            e.originator_id
            for e in map(self.hive.mapper.to_domain_event, notifications)
            if isinstance(e, Task.Submitted) and e.schedule_id in schedule_ids
        ]
        runs: dict[UUID, dict[str, int]] = {}
        latest: dict[UUID, int] = {}
        for task in reversed(self.hive.load_many(Task, fired).values()):
            assert task.schedule_id is not None
            if latest.setdefault(task.schedule_id, 0) == last:
                continue
            latest[task.schedule_id] += 1
            by_state = runs.setdefault(task.schedule_id, {})
            by_state[str(task.state)] = by_state.get(str(task.state), 0) + 1
        return runs

    @staticmethod
    def _row(s: Schedule, seq: int, position: int) -> ScheduleRow:
        t = s.template
        return ScheduleRow(
            schedule_id=s.id,
            name=s.name,
            cron=s.cron,
            timezone=s.timezone,
            every_s=s.every_s,
            start_at=s.start_at,
            task_type=t.type,
            priority=t.priority,
            capabilities=t.capabilities or [t.type],
            payload=orjson.loads(t.payload),
            overlap=str(s.overlap),
            catchup=str(s.catchup),
            catchup_limit=s.catchup_limit,
            state=str(s.state),
            not_before=s.not_before,
            last_tick=s.last_tick,
            next_tick=s.next_tick,
            buffered_tick=s.buffered,
            fired=s.fired,
            skipped=s.skipped,
            last_task_id=s.last_task_id,
            created_by=s.created_by,
            created_at=s.created_on,
            updated_at=s.modified_on,
            seq=seq,
            version=s.version,
            position=position,
        )


def _seq(row: ScheduleRow) -> int:
    return row.seq
