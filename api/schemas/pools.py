"""Pool bodies: a scaling pool's configuration, its current size and its launches."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from api.schemas.common import Model


class PoolPublic(Model):
    name: str
    capabilities: list[str]
    min_bots: int
    max_bots: int
    max_concurrency: int
    desired: int = Field(description="the autoscaler's last decision")
    reason: str | None = Field(description="why it last changed: backlog, idle, limits")
    inputs: dict[str, Any] | None = Field(description="what that decision was made from")
    resized_at: datetime | None
    bots: dict[str, int] = Field(description="live bots of the pool by state")


class PoolsPublic(Model):
    items: list[PoolPublic]


class LaunchPublic(Model):
    launch_id: UUID
    pool: str
    launcher: str
    state: str = Field(description="requested, registered, stopping, stopped or failed")
    bot_id: UUID | None
    reason: str | None
    exit_code: int | None
    requested_at: datetime
    registered_at: datetime | None
    closed_at: datetime | None


class LaunchesPublic(Model):
    items: list[LaunchPublic]
