"""The scheduler: fires the schedules whose ticks are due, as a control loop of the engine.

It keeps a timetable (per schedule: its version, next tick, whether a tick is buffered and
the task it waits for) from the schedules view, refreshed every round and corrected by
what each firing returns (a row older than what the scheduler already knows is ignored).
The timetable only says *when to look*: which ticks fire, and whether the previous run is
still open, is decided by the Hive from the log (``hive.schedules.fire``), so a stale
view, a second engine or a repeated round can cost a look but never a tick.

Woken by the next tick (``wait_hint``), by the periodic poll, and when a task a buffered
schedule waits for leaves the live index (it finished), so the buffered tick fires then.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.schedules import Schedule, ScheduleState
from domain.tasks import Task
from projections.schedule_reads import Timetable
from runtime.live import Changes, LiveIndex

log = logging.getLogger(__name__)


def timetable_of(schedule: Schedule) -> Timetable:
    return Timetable(
        version=schedule.version,
        active=schedule.state is ScheduleState.ACTIVE,
        next_tick=schedule.next_tick,
        buffered=schedule.buffered is not None,
        last_task_id=schedule.last_task_id,
    )


class Scheduler:
    name = "scheduler"

    def __init__(
        self,
        hive: Hive,
        index: LiveIndex,
        read_timetable: Callable[[], dict[UUID, Timetable]],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.hive = hive
        self.index = index
        self.read_timetable = read_timetable
        self.clock = clock
        self.known: dict[UUID, Timetable] = {}
        self.wake = threading.Event()
        self._awaited: frozenset[UUID] = frozenset()  # tasks buffered ticks wait for
        self._rounds = itertools.count(1)
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        awaited = self._awaited
        if changes.work and awaited and any(t not in self.index.tasks for t in awaited):
            self.wake.set()

    def run_once(self) -> int:
        """One round; returns how many events it recorded (ticks fired, buffered, skipped)."""
        self.wake.clear()
        self._refresh()
        now = self.clock()
        due = [i for i, t in self.known.items() if self._due(t, now)]
        if not due:
            return 0
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        committed = self.hive.schedules.fire(due, cause)
        for schedule in committed.items:
            self.known[schedule.id] = timetable_of(schedule)
        self._note_awaited()
        fired = sum(isinstance(e, Task.Submitted) for _, e in committed.recorded)
        if committed.recorded:
            log.info(
                "schedules fired",
                extra={"action": "schedules_fired", "schedules": len(due), "tasks": fired},
            )
        return len(committed.recorded)

    def wait_hint(self) -> float | None:
        """Seconds until the earliest next tick (None: no schedule has one)."""
        ticks = [t.next_tick for t in self.known.values() if t.active and t.next_tick]
        return (min(ticks) - self.clock()).total_seconds() if ticks else None

    def _due(self, t: Timetable, now: datetime) -> bool:
        if not t.active:
            return False
        if t.next_tick is not None and t.next_tick <= now:
            return True
        return t.buffered and t.last_task_id not in self.index.tasks

    def _refresh(self) -> None:
        seen = self.read_timetable()
        known = self.known
        self.known = {
            i: known[i] if i in known and known[i].version > t.version else t
            for i, t in seen.items()
        }
        self._note_awaited()

    def _note_awaited(self) -> None:
        self._awaited = frozenset(
            t.last_task_id
            for t in self.known.values()
            if t.active and t.buffered and t.last_task_id is not None
        )
