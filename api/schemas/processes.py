"""The hive's own processes, as they report themselves."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from api.schemas.common import Model
from store.processes import PoolUse, ProcessRow, Resources


class PoolPublic(Model):
    name: str = Field(description="reads (the API's and views' reads) or log (the event log)")
    size: int = Field(description="connections open")
    available: int = Field(description="of those, idle")
    max_size: int
    waiting: int = Field(description="clients waiting for a connection now")
    requests: int = Field(description="connections handed out since the pool opened")
    queued: int = Field(description="of those, how many had to wait")
    wait_ms: int = Field(description="their total wait")

    @classmethod
    def from_use(cls, p: PoolUse) -> PoolPublic:
        return cls(
            name=p.name,
            size=p.size,
            available=p.available,
            max_size=p.max_size,
            waiting=p.waiting,
            requests=p.requests,
            queued=p.queued,
            wait_ms=p.wait_ms,
        )


class ResourcesPublic(Model):
    cpu_s: float = Field(description="CPU seconds the process has used")
    cpu_share: float = Field(description="of one core, since its previous beat (1.0: a core)")
    rss_bytes: int = Field(description="resident memory")
    threads: int
    connections: int = Field(description="database connections its pools hold open")
    pools: list[PoolPublic]

    @classmethod
    def from_resources(cls, r: Resources | None) -> ResourcesPublic | None:
        if r is None:
            return None
        return cls(
            cpu_s=r.cpu_s,
            cpu_share=r.cpu_share,
            rss_bytes=r.rss_bytes,
            threads=r.threads,
            connections=r.connections,
            pools=[PoolPublic.from_use(p) for p in r.pools],
        )


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
    resources: ResourcesPublic | None = Field(description="as sampled at its last beat")

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
            resources=ResourcesPublic.from_resources(row.resources),
        )


class ProcessesPublic(Model):
    items: list[ProcessPublic]
    checks: dict[str, str] = Field(description="an engine runs; each loop has a leader")
