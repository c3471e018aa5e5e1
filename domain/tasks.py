"""A task: a unit of work submitted to the hive and done by one bot at a time.

Life: pending -> assigned -> running -> succeeded | failed, and cancelled from any live
state. A bot that did not report a task's start (a fast task, run at once) reports its
finish with how long it ran (``ran_s``): assigned -> succeeded | failed is then one event
that says both. A bot that goes silent loses its tasks back to pending (``LeaseExpired``); every
assignment carries a new fencing token, so a late report from the old holder is refused.
A pending task that no bot in the hive could do is flagged by an ``UnroutableTasks``
record, one for many tasks (``domain/unroutable.py``); it stays pending, and its next
assignment clears the flag. ``Unroutable``, the event that flagged one task at a time, is
no longer recorded: it is still read from old logs.
An assignment says why its bot was chosen (``Assigned.why``): completely, or, when it
names a dispatch round (``round_id``), only its own part, the round's record holding what
the round's tasks share (``domain/rounds.py``).
A delayed task (``not_before``) is pending from its submission but is not offered to any
bot before that time; a task a schedule fired names the schedule (``schedule_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotYourTask, StaleFencingToken
from domain.names import check_capabilities, check_json_text, check_short_name, check_text

MIN_PRIORITY, MAX_PRIORITY = 0, 9
MAX_DELAY = timedelta(days=366)
MAX_RAN_S = 366 * 24 * 3600.0


class TaskState(StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_held(self) -> bool:
        return self in (TaskState.ASSIGNED, TaskState.RUNNING)


FINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})


class Task(HiveAggregate):
    class Submitted(HiveAggregate.Created):
        type: str
        priority: int
        capabilities: list[str]
        payload: str  # canonical JSON text: kept verbatim, never re-interpreted
        idempotency_key: str | None
        not_before: datetime | None
        schedule_id: UUID | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Tasks submitted before delays and schedules existed: due at once, by hand."""
            state["not_before"] = None
            state["schedule_id"] = None

    class Assigned(HiveAggregate.Event):
        bot_id: UUID
        fencing_token: int
        why: dict[str, Any]  # complete; with ``round_id``, this task's choice in that round
        round_id: UUID | None = None  # the ``DispatchRound`` whose record completes ``why``

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Before dispatch rounds were recorded: every explanation was complete."""
            state["round_id"] = None

        def apply(self, task: Task) -> None:
            task.state = TaskState.ASSIGNED
            task.bot_id = self.bot_id
            task.fencing_token = self.fencing_token
            task.unroutable = None
            task.assigned_at = self.timestamp

    class Unroutable(HiveAggregate.Event):
        """Old logs only: what ``UnroutableTasks`` records now, for one task."""

        reason: str
        missing: list[str]  # required capabilities that no bot in the hive has

        def apply(self, task: Task) -> None:
            task.unroutable = self.reason

    class Started(HiveAggregate.Event):
        fencing_token: int

        def apply(self, task: Task) -> None:
            task.state = TaskState.RUNNING

    class Succeeded(HiveAggregate.Event):
        fencing_token: int
        result: str  # canonical JSON text
        ran_s: float | None = None  # set: it was never reported started; it ran this long

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Before a finish could carry its start: every task was started first."""
            state["ran_s"] = None

        def apply(self, task: Task) -> None:
            task.state = TaskState.SUCCEEDED
            task.result = self.result

    class Failed(HiveAggregate.Event):
        fencing_token: int
        error: str
        ran_s: float | None = None  # as ``Succeeded``'s

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["ran_s"] = None

        def apply(self, task: Task) -> None:
            task.state = TaskState.FAILED
            task.error = self.error

    class Cancelled(HiveAggregate.Event):
        reason: str

        def apply(self, task: Task) -> None:
            task.state = TaskState.CANCELLED
            task.error = self.reason

    class LeaseExpired(HiveAggregate.Event):
        bot_id: UUID
        reason: str

        def apply(self, task: Task) -> None:
            task.state = TaskState.PENDING
            task.bot_id = None

    def __init__(
        self,
        type: str,
        priority: int,
        capabilities: list[str],
        payload: str,
        idempotency_key: str | None,
        not_before: datetime | None,
        schedule_id: UUID | None,
        actor: str,
    ) -> None:
        self.type = type
        self.priority = priority
        self.capabilities = capabilities
        self.payload = payload
        self.idempotency_key = idempotency_key
        self.not_before = not_before
        self.schedule_id = schedule_id
        self.submitted_by = actor
        self.state = TaskState.PENDING
        self.bot_id: UUID | None = None
        self.fencing_token = 0
        self.result: str | None = None
        self.error: str | None = None
        self.unroutable: str | None = None  # why no bot could do it, when last looked at
        self.assigned_at: datetime | None = None  # of the latest assignment

    # -- commands ---------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        task_id: UUID,
        type: str,
        priority: int,
        capabilities: list[str] | None,
        payload: str,
        idempotency_key: str | None,
        cause: Cause,
        at: datetime,
        not_before: datetime | None = None,
        schedule_id: UUID | None = None,
    ) -> Task:
        return cls._open(
            cls.Submitted,
            id=task_id,
            cause=cause,
            at=at,
            type=type,
            priority=priority,
            capabilities=check_task_fields(type, priority, capabilities, payload),
            payload=payload,
            idempotency_key=(
                None if idempotency_key is None else check_text("idempotency key", idempotency_key)
            ),
            not_before=_check_not_before(not_before, at),
            schedule_id=schedule_id,
        )

    def assign(
        self,
        bot_id: UUID,
        why: dict[str, Any],
        cause: Cause,
        at: datetime,
        round_id: UUID | None = None,
    ) -> None:
        """``why``: the complete explanation; or, with ``round_id``, the task's choice in
        that round, whose record holds the rest (``domain/rounds.py``)."""
        if self.state is not TaskState.PENDING:
            raise InvalidTransition(f"task is {self.state}, not pending", task_id=self.id)
        self._record(
            self.Assigned,
            cause,
            at,
            bot_id=bot_id,
            fencing_token=self.fencing_token + 1,
            why=why,
            round_id=round_id,
        )

    def start(self, bot_id: UUID, fencing_token: int, cause: Cause, at: datetime) -> None:
        self._check_holder(bot_id, fencing_token)
        if self.state is TaskState.RUNNING:
            return  # a repeated report of the same start changes nothing
        if self.state is not TaskState.ASSIGNED:
            raise InvalidTransition(f"task is {self.state}, not assigned", task_id=self.id)
        self._record(self.Started, cause, at, fencing_token=fencing_token)

    def succeed(
        self,
        bot_id: UUID,
        fencing_token: int,
        result: str,
        cause: Cause,
        at: datetime,
        ran_s: float | None = None,
    ) -> None:
        """``ran_s``: the bot did not report the start, only that the task ran this long;
        start and success are then one event."""
        self._finish(
            self.Succeeded,
            TaskState.SUCCEEDED,
            bot_id,
            fencing_token,
            cause,
            at,
            ran_s,
            lambda: {"result": check_json_text("result", result)},
        )

    def fail(
        self,
        bot_id: UUID,
        fencing_token: int,
        error: str,
        cause: Cause,
        at: datetime,
        ran_s: float | None = None,
    ) -> None:
        self._finish(
            self.Failed,
            TaskState.FAILED,
            bot_id,
            fencing_token,
            cause,
            at,
            ran_s,
            lambda: {"error": check_text("error", error)},
        )

    def cancel(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.state.is_final:
            raise InvalidTransition(f"task is already {self.state}", task_id=self.id)
        self._record(self.Cancelled, cause, at, reason=check_text("reason", reason))

    def expire_lease(self, bot_id: UUID, reason: str, cause: Cause, at: datetime) -> None:
        """Take the task back from a bot that is gone; no-op if that bot no longer holds it."""
        if not self.state.is_held or self.bot_id != bot_id:
            return
        self._record(self.LeaseExpired, cause, at, bot_id=bot_id, reason=reason)

    # -- rules ------------------------------------------------------------------------

    def _check_holder(self, bot_id: UUID, fencing_token: int) -> None:
        if self.bot_id != bot_id:
            raise NotYourTask(task_id=self.id, state=str(self.state))
        if fencing_token != self.fencing_token:
            raise StaleFencingToken(
                task_id=self.id, given=fencing_token, current=self.fencing_token
            )

    def _finish(
        self,
        event: type[HiveAggregate.Event],
        outcome: TaskState,
        bot_id: UUID,
        fencing_token: int,
        cause: Cause,
        at: datetime,
        ran_s: float | None,
        fields: Callable[[], dict[str, Any]],
    ) -> None:
        """The same outcome reported again changes nothing (its fields are not looked at)."""
        self._check_holder(bot_id, fencing_token)
        if self.state is outcome:
            return
        ran = self._check_finishable(ran_s, at)
        self._record(event, cause, at, fencing_token=fencing_token, ran_s=ran, **fields())

    def _check_finishable(self, ran_s: float | None, at: datetime) -> float | None:
        """A running task may finish; an assigned one only with the time it ran (its start
        and finish reported as one), never more than it has been assigned. Returns the
        ``ran_s`` to record: None when the start was reported (its event has the time)."""
        if ran_s is not None and (
            not isinstance(ran_s, int | float) or not 0 <= ran_s <= MAX_RAN_S
        ):
            raise InvalidInput(f"ran_s must be 0..{MAX_RAN_S:g} seconds")
        if self.state is TaskState.RUNNING:
            return None
        if self.state is not TaskState.ASSIGNED or ran_s is None:
            raise InvalidTransition(f"task is {self.state}, not running", task_id=self.id)
        held = (at - self.assigned_at).total_seconds() if self.assigned_at else 0.0
        return round(min(float(ran_s), max(held, 0.0)), 6)


def implied_start(finish: Task.Succeeded | Task.Failed) -> datetime | None:
    """When a task that was never reported started began, as its finish says (``ran_s``
    before it); None when the start was reported (its ``Started`` has the time)."""
    if finish.ran_s is None:
        return None
    return finish.timestamp - timedelta(seconds=finish.ran_s)


def check_task_fields(
    type: str, priority: int, capabilities: list[str] | None, payload: str
) -> list[str]:
    """The rules a task's own fields obey; returns its capabilities as stored (default
    ``[type]``). A schedule's task template is held to them when the schedule is made, so
    a schedule can never fire a task the hive would refuse."""
    check_short_name("task type", type)
    if not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}")
    stored = check_capabilities(capabilities or [type])
    check_json_text("payload", payload)
    return stored


def _check_not_before(not_before: datetime | None, at: datetime) -> datetime | None:
    if not_before is None:
        return None
    if not_before.utcoffset() is None:
        raise InvalidInput("not_before must carry a time zone offset")
    if not_before - at > MAX_DELAY:
        raise InvalidInput(f"not_before must be at most {MAX_DELAY.days} days ahead")
    return not_before.astimezone(UTC)
