"""Pending tasks that no bot in the hive could do: one record per capability set and moment.

The dispatcher looks, each round, for capability sets that no ready or quarantined bot
has. It used to flag each such task with a ``Task.Unroutable`` event of its own: a backlog
submitted before any bot arrived cost one event per task. Now one ``UnroutableTasks``
records it for all of them at once: the capabilities, what is missing, the reason, and
the tasks it names. A named task that is still pending where the record stands in the log
is flagged by it (the views and the live index read it so); one assigned, finished or
cancelled by then is left alone. Its next assignment clears the flag, as before.

Each record is an aggregate of its own, made once and never changed: recording one needs
no earlier state, so it never loads anything and never conflicts with another writer.
``Task.Unroutable``, which old logs hold, is still read everywhere.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput
from domain.names import check_capabilities, check_text


class UnroutableTasks(HiveAggregate):
    class Unroutable(HiveAggregate.Created):
        capabilities: list[str]  # what every one of the tasks requires
        missing: list[str]  # of those, what no bot in the hive has at all
        reason: str
        task_ids: list[UUID]

    def __init__(
        self, capabilities: list[str], missing: list[str], reason: str, task_ids: list[UUID]
    ) -> None:
        self.capabilities = capabilities
        self.missing = missing
        self.reason = reason
        self.task_ids = task_ids

    @classmethod
    def flag(
        cls,
        *,
        record_id: UUID,
        capabilities: list[str],
        missing: list[str],
        reason: str,
        task_ids: list[UUID],
        cause: Cause,
        at: datetime,
    ) -> UnroutableTasks:
        if not task_ids:
            raise InvalidInput("an unroutable record names at least one task")
        if not set(missing) <= set(capabilities):
            raise InvalidInput("what is missing must be among the capabilities required")
        return cls._open(
            cls.Unroutable,
            id=record_id,
            cause=cause,
            at=at,
            capabilities=check_capabilities(capabilities),
            missing=sorted(missing),
            reason=check_text("reason", reason),
            task_ids=list(dict.fromkeys(task_ids)),
        )
