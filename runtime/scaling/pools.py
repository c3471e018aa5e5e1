"""A scaling pool's configuration, as the settings read it (``APIARY_POOLS``,
``APIARY_POOLS_FILE``) and as the autoscaler uses it: the policy's limits and the
template its bots are launched from."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.names import SHORT_NAME
from domain.policies.scaling import PoolLimits
from runtime.scaling.launcher import BotTemplate

PoolName = Annotated[str, StringConstraints(pattern=SHORT_NAME.pattern)]


class PoolConfig(BaseModel):
    """One scaling pool: bots with these capabilities, between ``min_bots`` and
    ``max_bots`` of them, started by the launcher as ``apiary bot`` processes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PoolName
    capabilities: list[PoolName] = Field(min_length=1, max_length=32)
    min_bots: int = Field(default=0, ge=0, le=1000)
    max_bots: int = Field(default=4, ge=1, le=1000)
    max_concurrency: int = Field(default=4, ge=1, le=10_000, description="slots per bot")
    max_step: int = Field(default=2, ge=1, description="bots added or removed per change")
    up_cooldown_s: float = Field(default=1.0, ge=0)
    down_cooldown_s: float = Field(default=15.0, ge=0)
    target_wait_s: float = Field(default=10.0, gt=0, description="clear the backlog within")
    max_oldest_wait_s: float = Field(default=30.0, gt=0, description="older asks for a bot")
    hysteresis: float = Field(default=0.25, ge=0, le=10)
    launch_timeout_s: float = Field(default=20.0, gt=0, description="time to register")
    exec: str | None = Field(default=None, description="run by each bot for every task")
    messages: bool = Field(default=False, description="its bots receive messages too")

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_bots > self.max_bots:
            raise ValueError(f"pool {self.name}: min_bots is above max_bots")
        return self

    def limits(self) -> PoolLimits:
        """What the scaling policy may do with this pool."""
        return PoolLimits(
            min_bots=self.min_bots,
            max_bots=self.max_bots,
            slots_per_bot=self.max_concurrency,
            max_step=self.max_step,
            up_cooldown_s=self.up_cooldown_s,
            down_cooldown_s=self.down_cooldown_s,
            target_wait_s=self.target_wait_s,
            max_oldest_wait_s=self.max_oldest_wait_s,
            hysteresis=self.hysteresis,
            launch_timeout_s=self.launch_timeout_s,
        )

    def template(self) -> BotTemplate:
        """What each of this pool's bot processes is started with."""
        return BotTemplate(
            self.name, self.capabilities, self.max_concurrency, self.exec, self.messages
        )
