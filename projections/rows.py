"""What the views hand to readers: one row of the tasks view, one of the fleet view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class TaskRow:
    task_id: UUID
    type: str
    priority: int
    capabilities: list[str]
    state: str
    payload: Any
    result: Any
    error: str | None
    bot_id: UUID | None
    fencing_token: int
    idempotency_key: str | None
    submitted_by: str
    submitted_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    assignment: dict[str, Any] | None
    unroutable: dict[str, Any] | None  # {"reason", "missing", "at"}: no bot could do it
    seq: int  # log position of the submission: the task's age order
    version: int
    position: int  # log position of the last event applied to this row
    not_before: datetime | None = None  # a delayed task is offered to no bot before then
    schedule_id: UUID | None = None  # the schedule that fired it
    flagged_at: list[int] | None = None  # positions of the unroutable records that named it
    attempt: int = 1  # the current attempt of the current series
    series: int = 1  # 1 + how many times it was re-driven
    error_kind: str | None = None  # the last failure's kind
    dead_reason: str | None = None  # why it was dead-lettered
    retry: dict[str, Any] | None = None  # the submission's narrowing of its retry policy


@dataclass(frozen=True)
class BotRow:
    bot_id: UUID
    name: str
    capabilities: list[str]
    max_concurrency: int
    version_label: str
    state: str
    registered_at: datetime
    lost_at: datetime | None
    lost_reason: str | None
    deregistered_at: datetime | None
    pool: str | None
    launch_id: UUID | None
    state_reason: str | None  # why it is draining or quarantined
    held: int  # tasks assigned to it or running on it, per the tasks view
    version: int
    position: int
    config_version: int | None = None  # what it said it runs by, at its last heartbeat
    takes_messages: bool = True  # a recipient of messages (it claims them)
    state_by: str | None = None  # who made its last change of state
    breaker: str = "closed"  # its circuit breaker: closed, open or half-open
    breaker_evidence: dict[str, Any] | None = None  # why its breaker last tripped
    breaker_cooldown_s: float | None = None
    breaker_probe_at: datetime | None = None  # open: when it gets its probe


@dataclass(frozen=True)
class TaskFilter:
    state: str | None = None
    type: str | None = None
    bot_id: UUID | None = None
    schedule_id: UUID | None = None
    error_kind: str | None = None
    finished_since: datetime | None = None  # finished at or after
    finished_until: datetime | None = None  # finished before


BOTS_LIVE = "live"  # registered, not lost or deregistered, and heartbeating (lease current)
BOTS_ALL = "all"


@dataclass(frozen=True)
class BotFilter:
    """Which bots a fleet read returns: ``state`` is a bot state (``ready``, ``draining``,
    ``quarantined``, ``lost``, ``deregistered``), ``live`` (the default) or ``all``."""

    state: str = BOTS_LIVE
    capability: str | None = None
    pool: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ScheduleRow:
    schedule_id: UUID
    name: str
    cron: str | None
    timezone: str | None
    every_s: int | None
    start_at: datetime
    task_type: str
    priority: int
    capabilities: list[str]
    payload: Any
    overlap: str
    catchup: str
    catchup_limit: int
    state: str
    not_before: datetime  # no tick before: its start, or when it was last resumed
    last_tick: datetime | None
    next_tick: datetime | None
    buffered_tick: datetime | None
    fired: int
    skipped: int
    last_task_id: UUID | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    seq: int
    version: int
    position: int
