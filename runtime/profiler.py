"""The profiler: a snapshot of a window (``domain/profile.py``) gathered from the stages
view, the config in force, the live index and the processes' timings, and the findings
the pure rules (``domain/policies/bottlenecks.py``) draw from it.

It runs when the report is asked for (``GET /v1/profile``, ``apiary profile``, the
dashboard's Profile page), never on a hot path: a few reads of bounded tables (the window
keeps an hour) and a pass over the live index's queues per pool.

Which pools serve a type: those whose bots did its work in the window, and those whose
capabilities include the type's name (a task's capabilities default to its type), so a
pool that has not run anything yet is still named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.policies.bottlenecks import Finding, Thresholds, findings
from domain.profile import (
    RUN,
    BotProfile,
    PoolProfile,
    ProcessTimings,
    Snapshot,
    Stage,
    Stages,
    TypeProfile,
)
from projections.histogram import BUCKETS
from projections.profile_reads import ProfileReads, WindowStage
from projections.stage_reads import StageHistogram
from runtime.config import Knobs


class ProcessTimingsSource(Protocol):
    def window(self, seconds: float) -> ProcessTimings:
        """The control loops', routes', views' and database pools' timings over the last
        ``seconds``, from every process."""
        ...


class PoolBacklog(Protocol):
    """What the profiler reads from the live index."""

    def backlog(
        self, servable: Callable[[frozenset[str]], bool]
    ) -> tuple[int, datetime | None]: ...

    def bots_in_pool(self, pool: str) -> int: ...


@dataclass(frozen=True)
class Profile:
    at: datetime
    since: datetime  # the first minute read: the window rounded out to whole minutes
    snapshot: Snapshot
    findings: list[Finding]


class Profiler:
    def __init__(
        self,
        reads: ProfileReads,
        knobs: Callable[[], Knobs],
        index: PoolBacklog,
        timings: ProcessTimingsSource,
        clock: Callable[[], datetime],
        thresholds: Thresholds | None = None,
    ) -> None:
        self.reads, self.knobs, self.index = reads, knobs, index
        self.timings, self.clock = timings, clock
        self.thresholds = thresholds or Thresholds()

    def report(self, window_s: float) -> Profile:
        """The window's snapshot and findings: the minutes that overlap the last
        ``window_s`` seconds (a minute is the finest the view keeps)."""
        now = self.clock()
        since = (now - timedelta(seconds=window_s)).replace(second=0, microsecond=0)
        rows = self.reads.stages(since)
        pools = self._pools(rows)
        types = self._types(rows, pools)
        snapshot = Snapshot(
            window_s,
            types=types,
            pools=pools,
            bots=self._bots(rows),
            process=self.timings.window(window_s),
        )
        return Profile(now, since, snapshot, findings(snapshot, self.thresholds))

    def _types(
        self, rows: list[WindowStage], pools: tuple[PoolProfile, ...]
    ) -> tuple[TypeProfile, ...]:
        pending = self.reads.pending()
        served: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            if r.scope == "pool":
                served[r.histogram.type].add(r.key)
        capable = {p.name: set(p.capabilities) for p in self.knobs().pools}
        names = sorted({r.histogram.type for r in rows if r.scope == "type"} | set(pending))
        out = []
        for name in names:
            serving = served[name] | {p for p, caps in capable.items() if name in caps}
            stages = _stages(
                r.histogram for r in rows if r.scope == "type" and r.histogram.type == name
            )
            out.append(TypeProfile(name, stages, pending.get(name, 0), tuple(sorted(serving))))
        return tuple(out)

    def _pools(self, rows: list[WindowStage]) -> tuple[PoolProfile, ...]:
        """The configured pools, and those seen in the window since removed from the
        config (their bots' count stands for their bounds)."""
        out = []
        configured = {p.name: p for p in self.knobs().pools}
        for name in sorted(set(configured) | {r.key for r in rows if r.scope == "pool"}):
            config, bots = configured.get(name), self.index.bots_in_pool(name)
            caps = frozenset(config.capabilities) if config is not None else frozenset()
            mine = [r.histogram for r in rows if r.scope == "pool" and r.key == name]
            out.append(
                PoolProfile(
                    name,
                    bots=bots,
                    min_bots=config.min_bots if config is not None else 0,
                    max_bots=config.max_bots if config is not None else bots,
                    pending=self._backlog(caps),
                    stages=_stages(mine),
                )
            )
        return tuple(out)

    def _backlog(self, capabilities: frozenset[str]) -> int:
        """Pending tasks a pool with these capabilities could take (none: no pool)."""
        if not capabilities:
            return 0

        def servable(needs: frozenset[str]) -> bool:
            return needs <= capabilities

        return self.index.backlog(servable)[0]

    def _bots(self, rows: list[WindowStage]) -> tuple[BotProfile, ...]:
        mine: dict[str, list[StageHistogram]] = defaultdict(list)
        for r in rows:
            if r.scope == "bot":
                mine[r.key].append(r.histogram)
        known = self.reads.bots(sorted(mine))
        out = []
        for bot_id, histograms in sorted(mine.items()):
            name, pool = known.get(bot_id, (bot_id, None))
            runs = {h.type: _stage(h) for h in histograms if h.stage == RUN}
            out.append(BotProfile(bot_id, name, pool, _stages(histograms), runs))
        return tuple(out)


def _stages(histograms: Iterable[StageHistogram]) -> Stages:
    """Per stage, its histograms (of several types) added up."""
    by_stage: dict[str, list[StageHistogram]] = defaultdict(list)
    for h in histograms:
        by_stage[h.stage].append(h)
    return {stage: _stage(_added(hs)) for stage, hs in by_stage.items()}


def _added(histograms: list[StageHistogram]) -> StageHistogram:
    if len(histograms) == 1:
        return histograms[0]
    counts = [0] * BUCKETS
    for h in histograms:
        for b, n in enumerate(h.counts):
            counts[b] += n
    first = histograms[0]
    return StageHistogram(
        first.type,
        first.stage,
        tuple(counts),
        sum(h.count for h in histograms),
        sum(h.sum_s for h in histograms),
    )


def _stage(h: StageHistogram) -> Stage:
    p = h.percentiles()
    return Stage(h.count, h.sum_s, p[0.5], p[0.95], p[0.99])
