"""The circuit breaker's part of the config document (see ``domain/policies/breaker.py``)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bots import MAX_COOLDOWN_S
from domain.policies.breaker import BreakerConfig as BreakerPolicy

MAX_WINDOW_S = 24 * 3600.0
MAX_COUNT = 10_000


class BreakerConfig(BaseModel):
    """When a bot that keeps failing is quarantined, and how it earns its way back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="false: no bot is quarantined for failing")
    consecutive_failures: int = Field(
        default=5, ge=1, le=MAX_COUNT, description="this many failed attempts in a row trip it"
    )
    failure_rate: float = Field(
        default=0.5, ge=0, le=1, description="this share of failures over the window trips it"
    )
    window_s: float = Field(default=60.0, gt=0, le=MAX_WINDOW_S)
    min_attempts: int = Field(
        default=10, ge=1, le=MAX_COUNT, description="attempts in the window before the rate counts"
    )
    cooldown_s: float = Field(
        default=30.0, gt=0, le=MAX_COOLDOWN_S, description="quarantined this long, then a probe"
    )
    max_cooldown_s: float = Field(
        default=600.0, gt=0, le=MAX_COOLDOWN_S, description="a failed probe doubles up to this"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        return self

    def policy(self) -> BreakerPolicy:
        return BreakerPolicy(**self.model_dump())
