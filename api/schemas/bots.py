"""Bot bodies: registration, heartbeats, claims and the reports a bot makes on its tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import Field, JsonValue, StringConstraints

from api.ports import ClaimedTask
from api.schemas.common import (
    Capabilities,
    FencingToken,
    Input,
    JsonDocument,
    Model,
    ShortName,
    batch_of,
    canonical_json,
    check_batch,
)
from api.settings import Settings
from domain.bots import MAX_CONCURRENCY
from domain.hive import Report
from domain.tasks import MAX_RAN_S
from projections.rows import BotFilter, BotRow

MAX_ERROR_CHARS = 4096


class BotRegister(Input):
    name: ShortName
    capabilities: Capabilities
    max_concurrency: Annotated[int, Field(strict=True, ge=1, le=MAX_CONCURRENCY)]
    version: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
    pool: ShortName | None = Field(default=None, description="the scaling pool it belongs to")
    launch_id: UUID | None = Field(
        default=None, description="set by the autoscaler's launcher: the launch it answers"
    )
    takes_messages: bool = Field(
        default=True,
        strict=True,
        description="it claims and acknowledges messages (`apiary bot --messages`); only "
        "such a bot is sent messages. Not said: true, as before the field existed",
    )


class BotRegistered(Model):
    bot_id: UUID
    token: str = Field(description="the bot's own API key: shown this once, store it")
    heartbeat_interval_s: float
    lease_ttl_s: float
    config_version: int = Field(description="the config version in force")
    start_in_finish: bool = Field(
        default=True,
        description="the hive takes a finish with `ran_s` for a task never reported "
        "started (its start and finish become one event)",
    )


class Heartbeat(Input):
    config_version: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="the config version the bot runs by"
    )


class HeartbeatAck(Model):
    lease_expires_at: datetime
    config_version: int = Field(description="the config version in force")
    heartbeat_interval_s: float
    lease_ttl_s: float


class ClaimRequest(Input):
    max_tasks: Annotated[int, Field(strict=True, ge=1, le=1000)] = 1
    wait_s: Annotated[float, Field(strict=True, ge=0, le=30)] = 0.0


class ClaimedTaskPublic(Model):
    id: UUID
    type: str
    priority: int
    capabilities: list[str]
    payload: JsonValue
    fencing_token: int

    @classmethod
    def from_claimed(cls, claimed: ClaimedTask) -> ClaimedTaskPublic:
        return cls(
            id=claimed.task_id,
            type=claimed.type,
            priority=claimed.priority,
            capabilities=claimed.capabilities,
            payload=orjson.loads(claimed.payload_json),
            fencing_token=claimed.fencing_token,
        )


class ClaimResponse(Model):
    tasks: list[ClaimedTaskPublic]


class StartItem(Model):
    task_id: UUID
    fencing_token: FencingToken


class StartItems(Input):
    tasks: list[StartItem] = batch_of("reports")

    def to_reports(self, settings: Settings) -> list[Report]:
        check_batch(len(self.tasks), settings.max_batch, ("body", "tasks"))
        return [Report(t.task_id, t.fencing_token) for t in self.tasks]


RAN_S = Field(
    default=None,
    ge=0,
    le=MAX_RAN_S,
    description="only for a task whose start was not reported: how long it ran, in "
    "seconds; its start and finish are then recorded as one event",
)


class CompleteItem(Model):
    task_id: UUID
    fencing_token: FencingToken
    result: JsonDocument = None
    ran_s: float | None = RAN_S


class CompleteItems(Input):
    tasks: list[CompleteItem] = batch_of("reports")

    def to_reports(self, settings: Settings) -> list[Report]:
        check_batch(len(self.tasks), settings.max_batch, ("body", "tasks"))
        return [
            Report(
                t.task_id,
                t.fencing_token,
                result=canonical_json(
                    t.result,
                    limit=settings.max_payload_bytes,
                    loc=("body", "tasks", i, "result"),
                    index=i,
                ),
                ran_s=t.ran_s,
            )
            for i, t in enumerate(self.tasks)
        ]


class FailItem(Model):
    task_id: UUID
    fencing_token: FencingToken
    error: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_ERROR_CHARS)]
    ran_s: float | None = RAN_S
    error_kind: ShortName | None = Field(
        default=None,
        description="what kind of failure (a short name, e.g. `timeout`, `bad-input`): the "
        "retry policy never retries the kinds it lists as non-retryable",
    )
    retryable: bool = Field(
        default=True,
        strict=True,
        description="false: the failure is the task's answer (it fails for good, no retry)",
    )


class FailItems(Input):
    tasks: list[FailItem] = batch_of("reports")

    def to_reports(self, settings: Settings) -> list[Report]:
        check_batch(len(self.tasks), settings.max_batch, ("body", "tasks"))
        return [
            Report(
                t.task_id,
                t.fencing_token,
                error=t.error,
                ran_s=t.ran_s,
                error_kind=t.error_kind,
                retryable=t.retryable,
            )
            for t in self.tasks
        ]


class ReportAccepted(Model):
    tasks: list[UUID] = Field(description="every task of the report (repeats included)")
    position: int


class BotStateChange(Input):
    reason: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1000)]


class BotStateChanged(Model):
    bot_id: UUID
    state: str
    position: int | None = Field(description="log position of the change; null if none")


class BotDeregistered(Model):
    bot_id: UUID
    state: str
    position: int


class BotBreaker(Model):
    state: str = Field(description="closed (gets work), open (quarantined) or half-open (probing)")
    evidence: dict[str, Any] | None = Field(
        default=None, description="why it last tripped: the rule, counts, window, error kinds"
    )
    cooldown_s: float | None = Field(default=None, description="its last quarantine's length")
    probe_at: datetime | None = Field(default=None, description="open: when it gets a probe")


class BotPublic(Model):
    id: UUID
    name: str
    capabilities: list[str]
    max_concurrency: int
    version: str
    state: str
    registered_at: datetime
    lost_at: datetime | None = None
    lost_reason: str | None = None
    deregistered_at: datetime | None = None
    pool: str | None = None
    launch_id: UUID | None = None
    state_reason: str | None = Field(default=None, description="why draining or quarantined")
    held: int = Field(description="tasks assigned to it or running on it")
    position: int
    config_version: int | None = Field(
        default=None, description="the config version it said it runs by, at its last heartbeat"
    )
    takes_messages: bool = Field(
        default=True, description="it claims messages: only such a bot is sent any"
    )
    state_by: str | None = Field(
        default=None, description="who made its last change of state (engine:breaker: its breaker)"
    )
    breaker: BotBreaker = Field(description="its circuit breaker")

    @classmethod
    def from_row(cls, row: BotRow) -> BotPublic:
        return cls(
            id=row.bot_id,
            name=row.name,
            capabilities=row.capabilities,
            max_concurrency=row.max_concurrency,
            version=row.version_label,
            state=row.state,
            registered_at=row.registered_at,
            lost_at=row.lost_at,
            lost_reason=row.lost_reason,
            deregistered_at=row.deregistered_at,
            pool=row.pool,
            launch_id=row.launch_id,
            state_reason=row.state_reason,
            held=row.held,
            position=row.position,
            config_version=row.config_version,
            takes_messages=row.takes_messages,
            state_by=row.state_by,
            breaker=BotBreaker(
                state=row.breaker,
                evidence=row.breaker_evidence,
                cooldown_s=row.breaker_cooldown_s,
                probe_at=row.breaker_probe_at,
            ),
        )


# What ?state= takes: the domain's bot states (a unit test holds them equal), live or all.
BotListState = Literal[
    "live", "all", "ready", "draining", "quarantined", "probing", "lost", "deregistered"
]


class BotListQuery(Input):
    state: BotListState = Field(
        default="live",
        description="live (default: ready, draining or quarantined, and heartbeating), "
        "all, or one state: ready, draining, quarantined, lost, deregistered",
    )
    capability: ShortName | None = Field(default=None, description="bots that have it")
    pool: ShortName | None = None
    name: ShortName | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def filter(self) -> BotFilter:
        return BotFilter(
            state=self.state, capability=self.capability, pool=self.pool, name=self.name
        )


class BotsPublic(Model):
    items: list[BotPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")
