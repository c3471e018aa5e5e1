"""Schedule bodies: a schedule in (trigger, task template, policies), the schedule out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self
from uuid import UUID

import orjson
from pydantic import Field, JsonValue, StringConstraints, model_validator

from api.schemas.common import (
    Capabilities,
    Input,
    Instant,
    JsonDocument,
    Model,
    ShortName,
    canonical_json,
)
from api.schemas.tasks import Priority
from domain.policies.schedule import MAX_CATCHUP_LIMIT, MIN_CATCHUP_LIMIT, Catchup, Overlap
from domain.policies.triggers import MAX_CRON_CHARS, MAX_EVERY_S, MIN_EVERY_S
from domain.schedules import Schedule, ScheduleSpec, ScheduleState, TaskTemplate
from projections.rows import ScheduleRow

CronText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_CRON_CHARS)]
ZoneName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]


class TemplateIn(Model):
    """The task each tick submits: the fields of a task submission, checked the same way."""

    type: ShortName
    priority: Priority = 5
    capabilities: Capabilities | None = Field(default=None, description="default [type]")
    payload: JsonDocument = Field(default_factory=dict)

    def to_template(self, max_payload_bytes: int) -> TaskTemplate:
        payload = canonical_json(
            self.payload, limit=max_payload_bytes, loc=("body", "template", "payload")
        )
        return TaskTemplate(self.type, self.priority, self.capabilities, payload)


class ScheduleCreate(Input):
    name: ShortName
    cron: CronText | None = Field(
        default=None,
        description="5 fields (minute hour day-of-month month day-of-week) or @daily etc.",
        examples=["30 2 * * MON-FRI"],
    )
    timezone: ZoneName | None = Field(
        default=None, description="IANA time zone of the cron expression (default UTC)"
    )
    every_s: Annotated[int, Field(strict=True, ge=MIN_EVERY_S, le=MAX_EVERY_S)] | None = Field(
        default=None, description="instead of cron: every N seconds from start_at"
    )
    start_at: Instant | None = Field(default=None, description="no tick before (default: now)")
    template: TemplateIn
    overlap: Overlap = Field(default=Overlap.SKIP, description="when the last run is still open")
    catchup: Catchup = Field(default=Catchup.RUN_ONCE, description="ticks missed while down")
    catchup_limit: Annotated[
        int, Field(strict=True, ge=MIN_CATCHUP_LIMIT, le=MAX_CATCHUP_LIMIT)
    ] = Field(default=10, description="run_all runs at most this many missed ticks")

    @model_validator(mode="after")
    def _one_trigger(self) -> Self:
        if (self.cron is None) == (self.every_s is None):
            raise ValueError("give exactly one trigger: cron or every_s")
        if self.every_s is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron schedules only")
        return self

    def to_spec(self, max_payload_bytes: int) -> ScheduleSpec:
        return ScheduleSpec(
            name=self.name,
            template=self.template.to_template(max_payload_bytes),
            cron=self.cron,
            timezone=self.timezone,
            every_s=self.every_s,
            start_at=self.start_at,
            overlap=self.overlap,
            catchup=self.catchup,
            catchup_limit=self.catchup_limit,
        )


class TemplatePublic(Model):
    type: str
    priority: int
    capabilities: list[str]
    payload: JsonValue


class SchedulePublic(Model):
    id: UUID
    name: str
    cron: str | None
    timezone: str | None
    every_s: int | None
    start_at: datetime
    template: TemplatePublic
    overlap: Overlap
    catchup: Catchup
    catchup_limit: int
    state: ScheduleState
    last_tick: datetime | None = Field(description="the latest tick decided")
    next_tick: datetime | None = Field(description="the next tick to decide (null unless active)")
    buffered_tick: datetime | None = Field(description="a tick waiting for the last run")
    fired: int
    skipped: int
    last_task_id: UUID | None
    created_by: str
    created_at: datetime
    position: int = Field(description="the log position this reflects (for ?min_position=)")

    @classmethod
    def from_row(cls, row: ScheduleRow) -> SchedulePublic:
        return cls(
            id=row.schedule_id,
            name=row.name,
            cron=row.cron,
            timezone=row.timezone,
            every_s=row.every_s,
            start_at=row.start_at,
            template=TemplatePublic(
                type=row.task_type,
                priority=row.priority,
                capabilities=row.capabilities,
                payload=row.payload,
            ),
            overlap=Overlap(row.overlap),
            catchup=Catchup(row.catchup),
            catchup_limit=row.catchup_limit,
            state=ScheduleState(row.state),
            last_tick=row.last_tick,
            next_tick=row.next_tick,
            buffered_tick=row.buffered_tick,
            fired=row.fired,
            skipped=row.skipped,
            last_task_id=row.last_task_id,
            created_by=row.created_by,
            created_at=row.created_at,
            position=row.position,
        )

    @classmethod
    def from_schedule(cls, s: Schedule, position: int) -> SchedulePublic:
        """From the aggregate a command returned: the log's word at that moment."""
        t = s.template
        return cls(
            id=s.id,
            name=s.name,
            cron=s.cron,
            timezone=s.timezone,
            every_s=s.every_s,
            start_at=s.start_at,
            template=TemplatePublic(
                type=t.type,
                priority=t.priority,
                capabilities=t.capabilities or [t.type],
                payload=orjson.loads(t.payload),
            ),
            overlap=s.overlap,
            catchup=s.catchup,
            catchup_limit=s.catchup_limit,
            state=s.state,
            last_tick=s.last_tick,
            next_tick=s.next_tick,
            buffered_tick=s.buffered,
            fired=s.fired,
            skipped=s.skipped,
            last_task_id=s.last_task_id,
            created_by=s.created_by,
            created_at=s.created_on,
            position=position,
        )


class SchedulesPublic(Model):
    items: list[SchedulePublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class ScheduleListQuery(Input):
    state: ScheduleState | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
