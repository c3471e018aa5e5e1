"""The bottleneck report's query and body: ranked findings with their evidence, and the
tables behind them (per type, pool and bot, each stage's p50/p95/p99 and share of end to
end; the processes' timings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Input, Model
from api.schemas.window import Window
from domain.profile import (
    END_TO_END,
    LoopTimings,
    PoolWaits,
    RouteTimings,
    Stage,
    Stages,
    ViewTimings,
)
from runtime.profiler import Profile


class ProfileQuery(Input):
    window: Window = Field(default="5m", validate_default=True)


class StagePublic(Model):
    count: int
    sum_s: float
    mean_s: float
    p50_s: float | None = Field(description="estimated from the histogram's buckets")
    p95_s: float | None
    p99_s: float | None
    share: float | None = Field(
        description="its mean over the end to end's mean, in the same scope (None: no end "
        "to end in the window)"
    )

    @classmethod
    def of(cls, s: Stage, whole: Stage | None) -> StagePublic:
        share = s.mean_s / whole.mean_s if whole is not None and whole.mean_s > 0 else None
        return cls(
            count=s.count,
            sum_s=round(s.sum_s, 3),
            mean_s=round(s.mean_s, 4),
            p50_s=s.p50_s,
            p95_s=s.p95_s,
            p99_s=s.p99_s,
            share=None if share is None else round(share, 4),
        )


def stages_public(stages: Stages) -> dict[str, StagePublic]:
    whole = stages.get(END_TO_END)
    return {name: StagePublic.of(s, whole) for name, s in sorted(stages.items())}


class FindingPublic(Model):
    rule: str
    severity: str = Field(description="critical, warning or info")
    score: float = Field(description="time it costs per second of the window; ranks findings")
    summary: str
    evidence: dict[str, Any] = Field(description="the numbers the rule used")


class TypeProfilePublic(Model):
    type: str
    pending: int
    pools: list[str] = Field(description="the pools that serve it")
    stages: dict[str, StagePublic]


class PoolProfilePublic(Model):
    name: str
    bots: int
    min_bots: int
    max_bots: int
    at_max: bool
    pending: int = Field(description="pending tasks its bots could take")
    stages: dict[str, StagePublic]


class BotProfilePublic(Model):
    bot_id: str
    name: str
    pool: str | None
    stages: dict[str, StagePublic]


class ProcessTimingsPublic(Model):
    loops: list[LoopTimings]
    routes: list[RouteTimings]
    views: list[ViewTimings]
    pools: list[PoolWaits]


class ProfilePublic(Model):
    at: datetime
    window_s: float
    since: datetime = Field(description="the first minute read: the window in whole minutes")
    findings: list[FindingPublic] = Field(description="most severe first, then by score")
    types: list[TypeProfilePublic]
    pools: list[PoolProfilePublic]
    bots: list[BotProfilePublic]
    process: ProcessTimingsPublic

    @classmethod
    def of(cls, p: Profile) -> ProfilePublic:
        s = p.snapshot
        return cls(
            at=p.at,
            window_s=s.window_s,
            since=p.since,
            findings=[
                FindingPublic(
                    rule=f.rule,
                    severity=f.severity,
                    score=round(f.score, 4),
                    summary=f.summary,
                    evidence=dict(f.evidence),
                )
                for f in p.findings
            ],
            types=[
                TypeProfilePublic(
                    type=t.type,
                    pending=t.pending,
                    pools=list(t.pools),
                    stages=stages_public(t.stages),
                )
                for t in s.types
            ],
            pools=[
                PoolProfilePublic(
                    name=q.name,
                    bots=q.bots,
                    min_bots=q.min_bots,
                    max_bots=q.max_bots,
                    at_max=q.at_max,
                    pending=q.pending,
                    stages=stages_public(q.stages),
                )
                for q in s.pools
            ],
            bots=[
                BotProfilePublic(
                    bot_id=b.bot_id, name=b.name, pool=b.pool, stages=stages_public(b.stages)
                )
                for b in s.bots
            ],
            process=ProcessTimingsPublic(
                loops=list(s.process.loops),
                routes=list(s.process.routes),
                views=list(s.process.views),
                pools=list(s.process.pools),
            ),
        )
