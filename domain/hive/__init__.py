"""The Hive: one event-sourced log, the only way anything in the hive changes.

Every command loads what it needs, asks the aggregates to decide, and saves all resulting
events in one transaction (``domain.hive.kernel``). Batches are the rule, not the
exception: a bulk submit, a round of dispatch or a bot's report of many tasks is one
transaction. A rule broken by any item refuses the whole batch, so a refused command never
leaves half its events behind.

The commands live by area, one service each over the one kernel (none inherits another):
``hive.tasks``, ``hive.fleet``, ``hive.keys``, ``hive.schedules``, ``hive.messages``,
``hive.scaling``, the operations area's ``hive.config`` and ``hive.modes``, the dashboard's
``hive.sessions``, and the detector's ``hive.incidents``. A new area is a module with
a service class and one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import ApplicationRecorder, Mapper

from domain.hive.config import ConfigCommands
from domain.hive.fleet import FleetCommands
from domain.hive.incidents import IncidentCommands
from domain.hive.kernel import MAX_ATTEMPTS, A, Committed, Kernel, Recorded
from domain.hive.keys import IssuedKey, KeyCommands, new_secret
from domain.hive.log import HiveLog, utc_now
from domain.hive.messages import MessageCommands, MessageSpec
from domain.hive.modes import ModeCommands
from domain.hive.scaling import ScalingCommands
from domain.hive.schedules import ScheduleCommands
from domain.hive.sessions import SessionCommands
from domain.hive.tasks import IDEMPOTENCY_NAMESPACE, Report, Submission, TaskCommands, TaskSpec

__all__ = [
    "IDEMPOTENCY_NAMESPACE",
    "MAX_ATTEMPTS",
    "Committed",
    "Hive",
    "IssuedKey",
    "MessageSpec",
    "Report",
    "Submission",
    "TaskSpec",
    "utc_now",
]


class Hive:
    """The log, its write kernel, and every area's commands over that one kernel."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
        new_secret: Callable[[], str] = new_secret,
    ) -> None:
        self.log = HiveLog(env)
        self.kernel = Kernel(self.log, clock=clock, new_id=new_id)
        self.tasks = TaskCommands(self.kernel)
        self.keys = KeyCommands(self.kernel, new_secret)
        self.fleet = FleetCommands(self.kernel, self.keys, self.tasks)
        self.schedules = ScheduleCommands(self.kernel)
        self.messages = MessageCommands(self.kernel)
        self.scaling = ScalingCommands(self.kernel)
        self.config = ConfigCommands(self.kernel)
        self.modes = ModeCommands(self.kernel)
        self.sessions = SessionCommands(self.kernel, new_secret)
        self.incidents = IncidentCommands(self.kernel)
        # Called with what each save of this process recorded, in the order of saves.
        self.listeners: list[Callable[[Recorded], object]] = self.kernel.listeners

    # -- the log and what reads it (no write lock) --------------------------------------

    @property
    def recorder(self) -> ApplicationRecorder:
        return self.log.recorder

    @property
    def mapper(self) -> Mapper[UUID]:
        return self.log.mapper

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.kernel.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.kernel.clock = clock

    def get(self, kind: type[A], aggregate_id: UUID) -> A:
        return self.kernel.get(kind, aggregate_id)

    def load_many(self, kind: type[A], ids: Iterable[UUID], *, fresh: bool = True) -> dict[UUID, A]:
        return self.kernel.load_many(kind, ids, fresh=fresh)

    def cached_many(self, kind: type[A], ids: Iterable[UUID]) -> dict[UUID, A] | None:
        return self.kernel.cached_many(kind, ids)

    def history(self, aggregate_id: UUID) -> list[Any]:
        return self.kernel.history(aggregate_id)

    def observe(self, events: Iterable[tuple[int, Any]]) -> None:
        self.kernel.observe(events)

    def close(self) -> None:
        self.log.close()
