"""Task bodies: submissions in, the task as the API shows it out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import Field, JsonValue, StringConstraints

from api.schemas.common import (
    Capabilities,
    Input,
    Instant,
    JsonDocument,
    Model,
    ShortName,
    batch_of,
    canonical_json,
    check_batch,
)
from api.settings import Settings
from domain.attempts import Attempt, AttemptOutcome
from domain.hive import TaskSpec
from domain.policies.retry import MAX_ATTEMPTS, MAX_TIMEOUT_S, RetryLimits
from domain.tasks import MAX_PRIORITY, MIN_PRIORITY, Task, TaskState
from projections.redrive_reads import RedriveFilter
from projections.rows import TaskFilter, TaskRow
from runtime.config import MAX_BATCH_CEILING

Priority = Annotated[
    int,
    Field(strict=True, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="9 is the most urgent"),
]
IdempotencyKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1000)]


class RetryAsk(Model):
    """What a submission asks of its type's retry policy: fewer attempts, a shorter
    timeout (a wider ask than the policy in force is refused, 422)."""

    max_attempts: int | None = Field(
        default=None, strict=True, ge=1, le=MAX_ATTEMPTS, description="attempts in all; 1: none"
    )
    timeout_s: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=MAX_TIMEOUT_S,
        description="an attempt running longer is failed (error kind `timeout`)",
    )

    def limits(self) -> RetryLimits:
        return RetryLimits(max_attempts=self.max_attempts, timeout_s=self.timeout_s)


class TaskCreate(Input):
    type: ShortName
    priority: Priority = 5
    capabilities: Capabilities | None = Field(
        default=None, description="what a bot needs to do the task; default [type]"
    )
    payload: JsonDocument = Field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="a repeat by the same principal returns the original task"
    )
    not_before: Instant | None = Field(
        default=None, description="offered to no bot before this time (at most 366 days ahead)"
    )
    retry: RetryAsk | None = Field(
        default=None, description="narrows its type's retry policy (never widens it)"
    )

    def to_spec(
        self,
        max_payload_bytes: int,
        loc: tuple[str | int, ...] = ("body", "payload"),
        index: int | None = None,
    ) -> TaskSpec:
        payload = canonical_json(self.payload, limit=max_payload_bytes, loc=loc, index=index)
        return TaskSpec(
            type=self.type,
            priority=self.priority,
            capabilities=self.capabilities,
            payload=payload,
            idempotency_key=self.idempotency_key,
            not_before=self.not_before,
            retry=None if self.retry is None else self.retry.limits(),
        )


class TaskBatchCreate(Input):
    tasks: list[TaskCreate] = batch_of("tasks")

    def to_specs(self, settings: Settings) -> list[TaskSpec]:
        check_batch(len(self.tasks), settings.max_batch, ("body", "tasks"))
        return [
            t.to_spec(settings.max_payload_bytes, ("body", "tasks", i, "payload"), index=i)
            for i, t in enumerate(self.tasks)
        ]


class CancelRequest(Input):
    reason: Reason


class RetryRequest(Input):
    reason: Reason


RedrivableState = Literal["failed", "dead", "cancelled"]
DEFAULT_REDRIVE_LIMIT = 100


class RedriveFilterIn(Model):
    states: list[RedrivableState] = Field(default=["dead"], min_length=1, max_length=3)
    type: ShortName | None = None
    error_kind: ShortName | None = None
    finished_since: Instant | None = Field(default=None, description="finished at or after")
    finished_until: Instant | None = Field(default=None, description="finished before")

    def found(self) -> RedriveFilter:
        return RedriveFilter(
            states=tuple(sorted(set(self.states))),
            type=self.type,
            error_kind=self.error_kind,
            finished_since=self.finished_since,
            finished_until=self.finished_until,
        )


class RedriveRequest(Input):
    filter: RedriveFilterIn = Field(default_factory=RedriveFilterIn)
    limit: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=MAX_BATCH_CEILING,
        description=f"at most this many, oldest first: 1..APIARY_MAX_BATCH (default "
        f"{DEFAULT_REDRIVE_LIMIT}, or APIARY_MAX_BATCH when lower)",
    )
    dry_run: bool = Field(default=False, strict=True, description="count them, change nothing")
    reason: Reason

    def capped(self, max_batch: int) -> int:
        if self.limit is None:
            return min(DEFAULT_REDRIVE_LIMIT, max_batch)
        check_batch(self.limit, max_batch, ("body", "limit"))
        return self.limit


class Redriven(Model):
    dry_run: bool
    count: int = Field(description="tasks re-driven (a dry run: that a run would re-drive)")
    task_ids: list[UUID] | None = Field(description="those re-driven; null on a dry run")
    position: int | None = Field(description="the log position of the re-drive; null: dry run")


class TaskListQuery(Input):
    state: TaskState | None = None
    type: ShortName | None = None
    bot_id: UUID | None = None
    schedule_id: UUID | None = None
    error_kind: ShortName | None = Field(default=None, description="the last failure's kind")
    finished_since: Instant | None = Field(default=None, description="finished at or after")
    finished_until: Instant | None = Field(default=None, description="finished before")
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def filter(self) -> TaskFilter:
        state = str(self.state) if self.state is not None else None
        return TaskFilter(
            state=state,
            type=self.type,
            bot_id=self.bot_id,
            schedule_id=self.schedule_id,
            error_kind=self.error_kind,
            finished_since=self.finished_since,
            finished_until=self.finished_until,
        )


class Unroutable(Model):
    reason: str
    missing: list[str] = Field(description="required capabilities that no bot has at all")
    at: datetime


class RetryLimitsPublic(Model):
    max_attempts: int | None = None
    timeout_s: float | None = None


class AttemptPublic(Model):
    series: int = Field(description="1 + the re-drives before it")
    attempt: int = Field(description="1-based within its series")
    bot_id: UUID
    started_at: datetime = Field(
        description="its start; else the start its end implies (ran_s); else its assignment"
    )
    ended_at: datetime | None = Field(description="null while running")
    outcome: AttemptOutcome
    error: str | None = None
    error_kind: str | None = None

    @classmethod
    def of(cls, a: Attempt) -> AttemptPublic:
        return cls(
            series=a.series,
            attempt=a.attempt,
            bot_id=a.bot_id,
            started_at=a.started_at,
            ended_at=a.ended_at,
            outcome=a.outcome,
            error=a.error,
            error_kind=a.error_kind,
        )


class TaskPublic(Model):
    id: UUID
    type: str
    priority: int
    capabilities: list[str]
    state: TaskState
    payload: JsonValue
    result: JsonValue = None
    error: str | None = None
    bot_id: UUID | None = None
    fencing_token: int
    idempotency_key: str | None = None
    submitted_by: str
    submitted_at: datetime
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    assignment: dict[str, Any] | None = Field(
        default=None,
        description="why the bot was chosen: the policy, the task's effective priority and "
        "wait, and the inputs and score of the chosen bot and the runners-up",
    )
    unroutable: Unroutable | None = Field(
        default=None,
        description="set while no bot could do the task (it stays pending); cleared when "
        "it is assigned",
    )
    not_before: datetime | None = Field(default=None, description="offered to no bot before")
    schedule_id: UUID | None = Field(default=None, description="the schedule that fired it")
    attempt: int = Field(default=1, description="the current attempt of the current series")
    series: int = Field(default=1, description="1 + how many times it was re-driven")
    error_kind: str | None = Field(default=None, description="the last failure's kind")
    dead_reason: str | None = Field(default=None, description="why it was dead-lettered")
    retry_at: datetime | None = Field(
        default=None, description="pending after a failed attempt: offered again from then"
    )
    limits: RetryLimitsPublic | None = Field(
        default=None, description="what its submission narrowed of its retry policy"
    )
    position: int = Field(
        description="the log position this reflects: pass it as ?min_position= to read your write"
    )

    @classmethod
    def from_row(cls, row: TaskRow) -> TaskPublic:
        return cls(
            id=row.task_id,
            type=row.type,
            priority=row.priority,
            capabilities=row.capabilities,
            state=TaskState(row.state),
            payload=row.payload,
            result=row.result,
            error=row.error,
            bot_id=row.bot_id,
            fencing_token=row.fencing_token,
            idempotency_key=row.idempotency_key,
            submitted_by=row.submitted_by,
            submitted_at=row.submitted_at,
            assigned_at=row.assigned_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            assignment=row.assignment,
            unroutable=Unroutable.model_validate(row.unroutable) if row.unroutable else None,
            not_before=row.not_before,
            schedule_id=row.schedule_id,
            attempt=row.attempt,
            series=row.series,
            error_kind=row.error_kind,
            dead_reason=row.dead_reason,
            retry_at=row.not_before if row.state == "pending" and row.attempt > 1 else None,
            limits=None if row.retry is None else RetryLimitsPublic.model_validate(row.retry),
            position=row.position,
        )

    @classmethod
    def from_task(cls, task: Task, position: int) -> TaskPublic:
        """From the aggregate a command returned: the log's truth, without the view's
        timestamps of assignment, start and finish (GET the task for those)."""
        return cls(
            id=task.id,
            type=task.type,
            priority=task.priority,
            capabilities=task.capabilities,
            state=task.state,
            payload=orjson.loads(task.payload),
            result=orjson.loads(task.result) if task.result is not None else None,
            error=task.error,
            bot_id=task.bot_id,
            fencing_token=task.fencing_token,
            idempotency_key=task.idempotency_key,
            submitted_by=task.submitted_by,
            submitted_at=task.created_on,
            not_before=task.not_before,
            schedule_id=task.schedule_id,
            attempt=task.attempt,
            series=task.series,
            error_kind=task.error_kind,
            dead_reason=task.dead_reason,
            retry_at=task.not_before if task.state == "pending" and task.attempt > 1 else None,
            limits=None if task.retry is None else RetryLimitsPublic.model_validate(task.retry),
            position=position,
        )


class TaskDetail(TaskPublic):
    """One task as ``GET /v1/tasks/{id}`` shows it: with its attempts, from the log."""

    attempts: list[AttemptPublic] = Field(
        description="every attempt of every series, oldest first (a lease lost before the "
        "start is none)"
    )

    @classmethod
    def of(cls, row: TaskRow, attempts: list[Attempt]) -> TaskDetail:
        public = TaskPublic.from_row(row)
        return cls(**dict(public), attempts=[AttemptPublic.of(a) for a in attempts])


class TasksPublic(Model):
    items: list[TaskPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class TaskSubmitted(Model):
    task: TaskPublic
    duplicate: bool = Field(description="the idempotency key repeated: this is the original")


class TasksSubmitted(Model):
    items: list[TaskSubmitted]
    position: int
