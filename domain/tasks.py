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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotYourTask, StaleFencingToken
from domain.names import check_capabilities, check_json_text, check_short_name, check_text
from domain.policies.retry import (
    MAX_ATTEMPTS,
    MAX_TIMEOUT_S,
    Retry,
    RetryLimits,
    RetryPolicy,
    deadline,
    decide_retry,
    jitter_fraction,
)

NO_RETRY = RetryPolicy(max_attempts=1)  # what a caller that names no policy gets

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
    DEAD = "dead"  # dead-lettered: retries exhausted; an operator may re-drive it

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_held(self) -> bool:
        return self in (TaskState.ASSIGNED, TaskState.RUNNING)


FINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.DEAD}
)
REDRIVABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED, TaskState.DEAD})


class Outcome(StrEnum):
    """How an attempt that did not succeed ended."""

    FAILED = "failed"  # its bot reported a failure
    LOST = "lost"  # its bot went silent after the start
    TIMED_OUT = "timed-out"  # it ran past its policy's timeout


class Task(HiveAggregate):
    class Submitted(HiveAggregate.Created):
        type: str
        priority: int
        capabilities: list[str]
        payload: str  # canonical JSON text: kept verbatim, never re-interpreted
        idempotency_key: str | None
        not_before: datetime | None
        schedule_id: UUID | None
        retry: dict[str, Any] | None  # the submission's narrowing of its retry policy

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Tasks submitted before delays and schedules existed: due at once, by hand."""
            state["not_before"] = None
            state["schedule_id"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Before retry policies: the task's type's policy, not narrowed."""
            state["retry"] = None

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
            task.started_at = self.timestamp

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
        """Failed for good: the failure was not retryable (see ``RetryScheduled`` and
        ``DeadLettered`` for the others)."""

        fencing_token: int
        error: str
        ran_s: float | None = None  # as ``Succeeded``'s
        error_kind: str | None = None

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["ran_s"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Before error kinds and retries: every failure was final and had no kind."""
            state["error_kind"] = None

        def apply(self, task: Task) -> None:
            task.state = TaskState.FAILED
            task.error = self.error
            task.error_kind = self.error_kind
            task.reported = (task.bot_id, self.fencing_token) if task.bot_id else None

    class RetryScheduled(HiveAggregate.Event):
        """An attempt ended without success (its bot's failure, its bot lost after the
        start, or its timeout), and the next attempt is due at ``not_before``."""

        bot_id: UUID
        fencing_token: int
        outcome: str  # an ``Outcome``
        error: str
        error_kind: str | None
        ran_s: float | None  # as ``Succeeded``'s
        attempt: int  # the attempt that ended
        delay_s: float
        not_before: datetime

        def apply(self, task: Task) -> None:
            task.reported = _reported(self)
            task.state = TaskState.PENDING
            task.bot_id = None
            task.started_at = None
            task.error = self.error
            task.error_kind = self.error_kind
            task.not_before = self.not_before
            task.attempt = self.attempt + 1

    class DeadLettered(HiveAggregate.Event):
        """An attempt ended without success and the hive gives up: ``reason`` says why."""

        bot_id: UUID
        fencing_token: int
        outcome: str  # an ``Outcome``
        error: str
        error_kind: str | None
        ran_s: float | None
        attempt: int
        reason: str

        def apply(self, task: Task) -> None:
            task.reported = _reported(self)
            task.state = TaskState.DEAD
            task.error = self.error
            task.error_kind = self.error_kind
            task.dead_reason = self.reason

    class Redriven(HiveAggregate.Event):
        """An operator sends a failed, dead or cancelled task round again: a new series of
        attempts, its history kept. Carries what a follower that let the finished task go
        needs to queue it again."""

        reason: str
        series: int  # the new series' number (the first is 1)
        type: str
        priority: int
        capabilities: list[str]
        retry: dict[str, Any] | None  # the submission's narrowing, as ``Submitted`` had it

        def apply(self, task: Task) -> None:
            task.state = TaskState.PENDING
            task.bot_id = None
            task.started_at = None
            task.not_before = None
            task.result = task.error = task.error_kind = task.dead_reason = None
            task.attempt = 1
            task.series = self.series

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
            task.started_at = None

    def __init__(
        self,
        type: str,
        priority: int,
        capabilities: list[str],
        payload: str,
        idempotency_key: str | None,
        not_before: datetime | None,
        schedule_id: UUID | None,
        retry: dict[str, Any] | None,
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
        self.started_at: datetime | None = None  # of the current attempt, when reported
        self.retry = retry
        self.attempt = 1  # the current attempt of the current series
        self.series = 1  # 1 + how many times an operator re-drove it
        self.error_kind: str | None = None
        self.dead_reason: str | None = None
        self.reported: tuple[UUID, int] | None = None  # the bot and token of a failure report

    @property
    def limits(self) -> RetryLimits | None:
        """What its submission asked of its retry policy."""
        return None if self.retry is None else RetryLimits(**self.retry)

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
        retry: RetryLimits | None = None,
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
            retry=None if retry is None else check_retry_limits(retry).as_dict() or None,
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
        *,
        error_kind: str | None = None,
        retryable: bool = True,
        policy: RetryPolicy = NO_RETRY,
    ) -> None:
        """The attempt failed: it is tried again, dead-lettered or failed for good, as
        ``policy`` (the task type's, narrowed by the submission) decides. A repeated
        report of the failure changes nothing."""
        if self.reported == (bot_id, fencing_token):
            return
        self._check_holder(bot_id, fencing_token)
        ran = self._check_finishable(ran_s, at)
        error = check_text("error", error)
        kind = None if error_kind is None else check_short_name("error kind", error_kind)
        ended = _Ended(bot_id, fencing_token, Outcome.FAILED, error, kind, ran)
        self._decide(ended, retryable, policy, cause, at)

    def time_out(self, cause: Cause, at: datetime, policy: RetryPolicy) -> bool:
        """Fail the current attempt if it has run past its timeout (from its start, or its
        assignment when its start was not reported); returns whether it did. Its bot's
        late report is then refused: the task is no longer its, or has a new token."""
        deadline = self.deadline(policy)
        if deadline is None or at < deadline or self.bot_id is None:
            return False
        timeout = policy.narrowed(self.limits).timeout_s
        error = f"ran past its timeout of {timeout:g} s"
        ended = _Ended(self.bot_id, self.fencing_token, Outcome.TIMED_OUT, error, "timeout", None)
        self._decide(ended, True, policy, cause, at)
        return True

    def deadline(self, policy: RetryPolicy) -> datetime | None:
        """When the current attempt times out; None when it has no timeout or is not held."""
        if not self.state.is_held:
            return None
        asked = None if self.limits is None else self.limits.timeout_s
        return deadline(self.started_at or self.assigned_at, policy.timeout_s, asked)

    def redrive(self, reason: str, cause: Cause, at: datetime) -> None:
        """A new series of attempts for a task that failed, was dead-lettered or cancelled."""
        if self.state not in REDRIVABLE:
            raise InvalidTransition(
                f"task is {self.state}: only a failed, dead or cancelled task can be retried",
                task_id=self.id,
            )
        self._record(
            self.Redriven,
            cause,
            at,
            reason=check_text("reason", reason),
            series=self.series + 1,
            type=self.type,
            priority=self.priority,
            capabilities=list(self.capabilities),
            retry=self.retry,
        )

    def cancel(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.state.is_final:
            raise InvalidTransition(f"task is already {self.state}", task_id=self.id)
        self._record(self.Cancelled, cause, at, reason=check_text("reason", reason))

    def expire_lease(
        self,
        bot_id: UUID,
        reason: str,
        cause: Cause,
        at: datetime,
        policy: RetryPolicy = NO_RETRY,
    ) -> None:
        """Take the task back from a bot that is gone; no-op if that bot no longer holds it.
        Before its start was reported it goes back to pending as it was (no attempt was
        made, as far as the hive knows); after, the attempt ended (``Outcome.LOST``) and
        ``policy`` decides as for a failure, so a task that keeps killing its bots is
        dead-lettered after its last attempt instead of running forever."""
        if not self.state.is_held or self.bot_id != bot_id:
            return
        if self.state is TaskState.ASSIGNED:
            self._record(self.LeaseExpired, cause, at, bot_id=bot_id, reason=reason)
            return
        ended = _Ended(bot_id, self.fencing_token, Outcome.LOST, reason, "lost", None)
        self._decide(ended, True, policy, cause, at)

    # -- rules ------------------------------------------------------------------------

    def _decide(
        self, ended: _Ended, retryable: bool, policy: RetryPolicy, cause: Cause, at: datetime
    ) -> None:
        decision = decide_retry(
            policy.narrowed(self.limits),
            attempt=self.attempt,
            error_kind=ended.error_kind,
            retryable=retryable,
            now=at,
            draw=jitter_fraction(self.id, self.series, self.attempt),
        )
        if isinstance(decision, Retry):
            self._record(
                self.RetryScheduled,
                cause,
                at,
                **ended.fields(),
                attempt=self.attempt,
                delay_s=decision.delay_s,
                not_before=decision.at,
            )
        elif decision.dead:
            self._record(
                self.DeadLettered,
                cause,
                at,
                **ended.fields(),
                attempt=self.attempt,
                reason=decision.reason,
            )
        else:
            self._record(
                self.Failed,
                cause,
                at,
                fencing_token=ended.fencing_token,
                error=ended.error,
                ran_s=ended.ran_s,
                error_kind=ended.error_kind,
            )

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


@dataclass(frozen=True)
class _Ended:
    """How an attempt ended, as its events record it."""

    bot_id: UUID
    fencing_token: int
    outcome: Outcome
    error: str
    error_kind: str | None
    ran_s: float | None

    def fields(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "fencing_token": self.fencing_token,
            "outcome": str(self.outcome),
            "error": self.error,
            "error_kind": self.error_kind,
            "ran_s": self.ran_s,
        }


def _reported(ended: Task.RetryScheduled | Task.DeadLettered) -> tuple[UUID, int] | None:
    """A failure its bot reported, which the bot may report again: changes nothing then."""
    if ended.outcome != Outcome.FAILED:
        return None
    return (ended.bot_id, ended.fencing_token)


Finish = Task.Succeeded | Task.Failed | Task.RetryScheduled | Task.DeadLettered


def implied_start(finish: Finish) -> datetime | None:
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


def check_retry_limits(limits: RetryLimits) -> RetryLimits:
    """A submission's narrowing, held to the bounds any policy may have."""
    if limits.max_attempts is not None and (
        not isinstance(limits.max_attempts, int) or not 1 <= limits.max_attempts <= MAX_ATTEMPTS
    ):
        raise InvalidInput(f"retry.max_attempts must be 1..{MAX_ATTEMPTS}")
    if limits.timeout_s is not None and (
        not isinstance(limits.timeout_s, int | float) or not 0 < limits.timeout_s <= MAX_TIMEOUT_S
    ):
        raise InvalidInput(f"retry.timeout_s must be more than 0 and at most {MAX_TIMEOUT_S:g}")
    return limits


def _check_not_before(not_before: datetime | None, at: datetime) -> datetime | None:
    if not_before is None:
        return None
    if not_before.utcoffset() is None:
        raise InvalidInput("not_before must carry a time zone offset")
    if not_before - at > MAX_DELAY:
        raise InvalidInput(f"not_before must be at most {MAX_DELAY.days} days ahead")
    return not_before.astimezone(UTC)
