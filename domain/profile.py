"""What the hive looked like over a window, as the bottleneck report's rules read it.

A ``Snapshot`` holds plain numbers, gathered by the profiler (``runtime/profiler.py``)
from the views, the config in force, the live index and the processes' own timings, so
the rules (``domain/policies/bottlenecks.py``) are pure functions of it and are tested on
made-up snapshots.

Stages are those of the stages view (``projections/stage_view.py``): ``submit_assign``
(queue wait), ``assign_start`` (pick-up), ``start_done`` (the bot's run), ``end_to_end``
and ``overhead`` (end to end less the run). The process-level timings (control loops,
HTTP routes, views, database pools) are measured by each process and reported like
heartbeats; a snapshot without them (none reported) simply has no findings about them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

QUEUE = "submit_assign"
PICK_UP = "assign_start"
RUN = "start_done"
END_TO_END = "end_to_end"
OVERHEAD = "overhead"
STAGES = (QUEUE, PICK_UP, RUN, END_TO_END, OVERHEAD)


@dataclass(frozen=True)
class Stage:
    """One stage's durations in the window: how many, their sum and percentiles (None:
    no sample)."""

    count: int
    sum_s: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None

    @property
    def mean_s(self) -> float:
        return self.sum_s / self.count if self.count else 0.0


Stages = Mapping[str, Stage]  # per stage name; a stage without samples is absent


@dataclass(frozen=True)
class TypeProfile:
    type: str
    stages: Stages
    pending: int = 0  # its tasks waiting now
    pools: tuple[str, ...] = ()  # the pools that serve it (did its work, or could)


@dataclass(frozen=True)
class PoolProfile:
    name: str
    bots: int  # live now
    min_bots: int
    max_bots: int
    pending: int = 0  # pending tasks its bots could take
    stages: Stages = field(default_factory=dict)  # every type its bots ran, together

    @property
    def at_max(self) -> bool:
        return self.bots >= self.max_bots


@dataclass(frozen=True)
class BotProfile:
    bot_id: str
    name: str
    pool: str | None
    stages: Stages  # every type it ran, together
    runs: Stages = field(default_factory=dict)  # its run (start_done) per task type


@dataclass(frozen=True)
class LoopTimings:
    """A control loop's rounds in the window (its leader's): durations, the share of them
    spent on the CPU, work done per round and the pending work it faced."""

    name: str
    rounds: int
    p50_s: float
    p99_s: float
    cpu_share: float  # 0..1 of the rounds' wall time
    items: float  # per round
    pending: int


@dataclass(frozen=True)
class RouteTimings:
    route: str  # method and template: "POST /v1/tasks"
    count: int
    p50_s: float
    p99_s: float


@dataclass(frozen=True)
class ViewTimings:
    view: str
    lag_events: int
    events_per_s: float  # applied, over the window


@dataclass(frozen=True)
class PoolWaits:
    """Waits for a connection of one database pool of one process in the window."""

    process: str
    pool: str
    waiting: int  # requests that had to wait
    wait_ms: float  # their mean wait


@dataclass(frozen=True)
class ProcessTimings:
    loops: tuple[LoopTimings, ...] = ()
    routes: tuple[RouteTimings, ...] = ()
    views: tuple[ViewTimings, ...] = ()
    pools: tuple[PoolWaits, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    window_s: float
    types: tuple[TypeProfile, ...] = ()
    pools: tuple[PoolProfile, ...] = ()
    bots: tuple[BotProfile, ...] = ()
    process: ProcessTimings = ProcessTimings()

    def pool(self, name: str) -> PoolProfile | None:
        return next((p for p in self.pools if p.name == name), None)
