"""Metrics bodies: stage latencies per task type and completions per minute."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas.common import Model
from projections.stage_reads import MinuteCount, StageHistogram


class StagePublic(Model):
    count: int
    sum_s: float
    p50_s: float | None = Field(description="estimated from the histogram's buckets")
    p95_s: float | None
    p99_s: float | None

    @classmethod
    def from_histogram(cls, h: StageHistogram) -> StagePublic:
        p = h.percentiles()
        return cls(count=h.count, sum_s=h.sum_s, p50_s=p[0.5], p95_s=p[0.95], p99_s=p[0.99])


class TypeStagesPublic(Model):
    type: str
    stages: dict[str, StagePublic] = Field(
        description="first attempts: submit_assign, assign_start, start_done, end_to_end "
        "(those seen so far)"
    )
    retried: dict[str, StagePublic] = Field(
        default_factory=dict,
        description="the same stages of the attempts after a task's first (a retry, a "
        "re-drive); end_to_end: the tasks whose last attempt was one",
    )


class MinutePublic(Model):
    type: str
    minute: datetime
    succeeded: int
    failed: int
    e2e_mean_s: float | None

    @classmethod
    def from_count(cls, m: MinuteCount) -> MinutePublic:
        return cls(
            type=m.type,
            minute=m.minute,
            succeeded=m.succeeded,
            failed=m.failed,
            e2e_mean_s=m.e2e_mean_s,
        )


class StagesPublic(Model):
    items: list[TypeStagesPublic]
    minutes: list[MinutePublic] = Field(
        description="per type, the recent minutes in which tasks ended, oldest first"
    )

    @classmethod
    def build(cls, histograms: list[StageHistogram], minutes: list[MinuteCount]) -> StagesPublic:
        by_type: dict[str, tuple[dict[str, StagePublic], dict[str, StagePublic]]] = {}
        for h in histograms:
            first, retried = by_type.setdefault(h.type, ({}, {}))
            (retried if h.retried else first)[h.stage] = StagePublic.from_histogram(h)
        return cls(
            items=[
                TypeStagesPublic(type=t, stages=first, retried=retried)
                for t, (first, retried) in sorted(by_type.items())
            ],
            minutes=[MinutePublic.from_count(m) for m in minutes],
        )
