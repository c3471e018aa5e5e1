"""Every knob of a hive process, from ``APIARY_*`` environment variables (one place)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.scaling.pools import PoolConfig


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
