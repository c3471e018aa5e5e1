"""The hive's own processes, as they report themselves."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from api.schemas.common import Model
from store.processes import ProcessRow


class ProcessPublic(Model):
    id: UUID
    role: str = Field(description="all, api or engine")
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    config_version: int = Field(description="the config version it has applied")
    runs: list[str] = Field(description="the control loops it runs")
    leads: list[str] = Field(description="those it leads now")

    @classmethod
    def from_row(cls, row: ProcessRow) -> ProcessPublic:
        return cls(
            id=row.process_id,
            role=row.role,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            seen_at=row.seen_at,
            config_version=row.config_version,
            runs=row.runs,
            leads=row.leads,
        )


class ProcessesPublic(Model):
    items: list[ProcessPublic]
    checks: dict[str, str] = Field(description="an engine runs; each loop has a leader")
