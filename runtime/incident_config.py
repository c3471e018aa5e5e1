"""The incident detector's part of the config document (see ``domain/policies/incidents.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.policies.incidents import IncidentConfig as IncidentPolicy

MAX_WINDOW_S = 24 * 3600.0
MAX_COUNT = 10_000_000


class IncidentConfig(BaseModel):
    """When the hive's trouble is an incident, and when an incident is over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="false: no incident is opened")
    window_s: float = Field(default=60.0, gt=0, le=3600, description="what every rule counts over")
    quiet_s: float = Field(
        default=120.0, gt=0, le=MAX_WINDOW_S, description="quiet this long: resolved"
    )
    update_every_s: float = Field(
        default=10.0, ge=0, le=3600, description="news of an open incident, at most this often"
    )
    critical_factor: float = Field(
        default=4.0, ge=1, le=1000, description="critical at this many times a threshold"
    )
    bots_lost: int = Field(default=2, ge=1, le=MAX_COUNT, description="bots lost in the window")
    min_attempts: int = Field(
        default=10, ge=1, le=MAX_COUNT, description="attempts before a failure rate counts"
    )
    failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="the least failure rate that is a spike"
    )
    spike_factor: float = Field(
        default=3.0, ge=1, le=1000, description="a spike: this many times the type's baseline"
    )
    baseline_alpha: float = Field(
        default=0.3, gt=0, le=1, description="weight of each window in a type's baseline"
    )
    retry_storm: int = Field(default=100, ge=1, le=MAX_COUNT, description="retries per type")
    dead_letters: int = Field(default=10, ge=1, le=MAX_COUNT, description="dead letters per type")
    pending_age_s: float = Field(
        default=300.0, gt=0, le=MAX_WINDOW_S, description="the oldest pending task's SLO"
    )
    pending_age_by_type: dict[str, Annotated[float, Field(gt=0, le=MAX_WINDOW_S)]] = Field(
        default={}, description="the SLO per task type, where it differs"
    )
    view_lag: int = Field(default=50_000, ge=1, le=MAX_COUNT, description="positions behind")
    database_critical_s: float = Field(
        default=30.0, gt=0, le=MAX_WINDOW_S, description="an outage this long is critical"
    )
    leaderless_s: float = Field(
        default=15.0, gt=0, le=MAX_WINDOW_S, description="a loop without a leader this long"
    )
    cascade_bots: int = Field(default=3, ge=2, le=10_000, description="a cascade: this many bots")
    cascade_types: int = Field(default=3, ge=2, le=10_000, description="or this many task types")

    def policy(self) -> IncidentPolicy:
        return IncidentPolicy(**self.model_dump())
