"""The hive's mode over HTTP: as this process acts on it, as recorded, and an operator's say."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from api.mode_gate import HiveModeNow
from api.schemas.common import Input, Model

ModeName = Literal["normal", "degraded", "critical", "maintenance"]
Reason = Annotated[
    str, Field(min_length=1, max_length=500, description="why: recorded with the mode")
]


class CitedIncident(Model):
    incident_id: str
    rule: str


class ModePublic(Model):
    mode: ModeName = Field(description="what this process acts on (also X-Apiary-Mode)")
    recorded: ModeName = Field(description="the hive's mode as the log has it")
    set_by: Literal["policy", "operator"] = Field(
        description="operator: it holds until an operator clears it"
    )
    actor: str
    reason: str
    since: datetime | None = Field(description="null: never changed (normal from the start)")
    incidents: list[CitedIncident]
    version: int = Field(description="of the mode's record; 0 before its first change")
    local: str | None = Field(
        description="why this process is critical whatever is recorded (null: it is not)"
    )

    @classmethod
    def of(cls, now: HiveModeNow) -> ModePublic:
        row = now.recorded.row
        return cls(
            mode=now.effective(),  # type: ignore[arg-type]
            recorded=row.mode,  # type: ignore[arg-type]
            set_by=row.set_by,  # type: ignore[arg-type]
            actor=row.actor,
            reason=row.reason,
            since=row.since,
            incidents=[CitedIncident(**c) for c in row.incidents],
            version=row.version,
            local=now.why_critical(),
        )


class ModeSet(Input):
    mode: ModeName
    reason: Reason


class ModeClear(Input):
    reason: Reason
