"""Incidents as the API shows them: the list (a keyset page), one with its timeline and
evidence, and an operator's acknowledgement or resolution (a note or a reason)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from api.schemas.common import Input, Model
from domain.incidents import MAX_TEXT, RuleName
from projections.incident_reads import IncidentFilter, IncidentRow, TimelineRow

Text = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_TEXT)]
Rule = RuleName
State = Literal["open", "acknowledged", "resolved"]
SeverityName = Literal["warning", "critical"]


class IncidentListQuery(Input):
    state: State | None = None
    rule: Rule | None = None
    severity: SeverityName | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def filter(self) -> IncidentFilter:
        return IncidentFilter(state=self.state, rule=self.rule, severity=self.severity)


class AcknowledgeRequest(Input):
    note: Text


class ResolveRequest(Input):
    reason: Text


class IncidentPublic(Model):
    id: UUID
    rule: str
    subject: str = Field(description="a task type, a view, a loop, or hive / fleet")
    episode: int = Field(description="the (rule, subject)'s how-many-th incident")
    state: str
    severity: str
    summary: str
    total: int = Field(description="events the rule counted; the evidence cites the first")
    note: str | None = Field(description="the operator's acknowledgement")
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    version: int
    position: int = Field(description="the log position of its latest event")

    @classmethod
    def of(cls, row: IncidentRow) -> IncidentPublic:
        return cls(
            id=row.incident_id,
            rule=row.rule,
            subject=row.subject,
            episode=row.episode,
            state=row.state,
            severity=row.severity,
            summary=row.summary,
            total=row.total,
            note=row.note,
            opened_at=row.opened_at,
            updated_at=row.updated_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            resolution=row.resolution,
            version=row.version,
            position=row.position,
        )


class IncidentsPublic(Model):
    items: list[IncidentPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class TimelineEntry(Model):
    version: int
    position: int
    event: str = Field(description="opened, updated, escalated, acknowledged or resolved")
    actor: str
    at: datetime
    detail: dict[str, Any]


class IncidentDetail(IncidentPublic):
    evidence: list[dict[str, Any]] = Field(
        description="the events that tripped it (log position, aggregate id and version, "
        "event, time; the task type or bot where it applies): the first 50"
    )
    timeline: list[TimelineEntry]

    @classmethod
    def with_timeline(cls, row: IncidentRow, timeline: list[TimelineRow]) -> IncidentDetail:
        base = IncidentPublic.of(row).model_dump()
        entries = [TimelineEntry(**vars(t)) for t in timeline]
        return cls(**base, evidence=row.evidence, timeline=entries)
