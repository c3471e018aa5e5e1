"""The processes' timings over a window, as ``GET /v1/processes/timings`` answers."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from api.schemas.common import Model
from api.schemas.processes import ResourcesPublic
from projections.histogram import bucket_range
from projections.process_stats import ProcessWindow, TimingsWindow
from projections.timings import Timing


class BucketPublic(Model):
    le: float | None = Field(description="upper bound in seconds (null: over 1 h)")
    count: int


class TimingPublic(Model):
    name: str = Field(
        description="http:<METHOD> <route>:<status class>, loop:<name>, save, view:<name>",
        examples=["http:GET /v1/tasks:2xx"],
    )
    count: int
    sum_s: float
    p50_s: float | None = Field(description="estimated from the histogram's buckets")
    p95_s: float | None
    p99_s: float | None
    cpu_s: float = Field(description="CPU time of a loop's rounds")
    items: int = Field(description="a loop's items of work; a save's or a view page's events")
    busy: int = Field(description="how many did any work (a loop's busy rounds)")
    buckets: list[BucketPublic] = Field(description="the buckets that counted any")

    @classmethod
    def from_timing(cls, name: str, t: Timing) -> TimingPublic:
        return cls(
            name=name,
            count=t.count,
            sum_s=t.sum_s,
            p50_s=t.p50,
            p95_s=t.p95,
            p99_s=t.p99,
            cpu_s=t.cpu_s,
            items=t.items,
            busy=t.busy,
            buckets=[BucketPublic(le=_upper(b), count=n) for b, n in enumerate(t.counts) if n],
        )


def _upper(bucket: int) -> float | None:
    upper = bucket_range(bucket)[1]
    return None if upper == float("inf") else upper


def timings_of(timings: dict[str, Timing]) -> list[TimingPublic]:
    return [TimingPublic.from_timing(name, timings[name]) for name in sorted(timings)]


class ProcessTimingsPublic(Model):
    id: UUID
    role: str
    host: str
    pid: int
    resources: ResourcesPublic | None = Field(description="null: the process is gone")
    timings: list[TimingPublic]

    @classmethod
    def from_window(cls, p: ProcessWindow) -> ProcessTimingsPublic:
        return cls(
            id=p.process_id,
            role=p.role,
            host=p.host,
            pid=p.pid,
            resources=ResourcesPublic.from_resources(p.resources),
            timings=timings_of(p.timings),
        )


class TimingsPublic(Model):
    window_s: float
    processes: list[ProcessTimingsPublic]
    hive: list[TimingPublic] = Field(description="every process's timings added up")
    lags: dict[str, int] = Field(description="per view: log positions it has still to apply")

    @classmethod
    def from_window(cls, w: TimingsWindow) -> TimingsPublic:
        return cls(
            window_s=w.window_s,
            processes=[ProcessTimingsPublic.from_window(p) for p in w.processes],
            hive=timings_of(w.hive),
            lags=w.lags,
        )
