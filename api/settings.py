"""Every knob of a hive process, from ``APIARY_*`` environment variables (one place)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        return BotTemplate(
            self.name, self.capabilities, self.max_concurrency, self.exec, self.messages
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APIARY_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="libpq URL; unset = an embedded PostgreSQL under `home`"
    )
    home: Path = Field(default=Path(".apiary"), description="local state: embedded db, keys")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    max_batch: int = Field(default=1000, ge=1, description="items per batch request")

    bot_lease_ttl_s: float = Field(default=5.0, gt=0, description="silence before a bot is lost")
    heartbeat_interval_s: float = Field(default=1.5, gt=0)
    reaper_interval_s: float = Field(default=0.5, gt=0)
    claim_max_wait_s: float = Field(default=30.0, gt=0)
    message_visibility_s: float = Field(
        default=30.0,
        gt=0,
        description="a delivered message unacknowledged this long is redelivered",
    )
    dispatch_page: int = Field(default=2000, ge=1, description="pending tasks per dispatch round")
    routing_alpha: float = Field(
        default=0.2, gt=0, le=1, description="weight of each new outcome in what routing learns"
    )
    routing_aging_s: float = Field(
        default=30.0, gt=0, description="waiting this long raises a task's priority one step"
    )
    projection_page: int = Field(default=500, ge=1, description="events per view transaction")
    poll_interval_s: float = Field(default=1.0, gt=0, description="safety-net poll of the log")

    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_lock_timeout_s: int = Field(default=5, ge=1)
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After on 503")

    pools: list[PoolConfig] = Field(default=[], description="scaling pools, as JSON")
    pools_file: Path | None = Field(default=None, description="scaling pools, as TOML")
    scaler_interval_s: float = Field(default=0.5, gt=0, description="autoscaler's pace")
    hive_url: str | None = Field(
        default=None, description="where launched bots reach the API (default: host:port)"
    )

    @model_validator(mode="after")
    def _load_pools(self) -> Self:
        if self.pools_file is not None:
            with self.pools_file.open("rb") as f:
                table = tomllib.load(f)
            extra = [PoolConfig.model_validate(p) for p in table.get("pool", [])]
            object.__setattr__(self, "pools", [*self.pools, *extra])
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        return self
