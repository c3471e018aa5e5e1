"""The bottleneck report's view of the processes' own timings: each process's per-minute
measures (``projections/process_stats.py``) over a window, as the report's rules read them
(``domain/profile.py``: control loops, HTTP routes, views, database pools).

- A loop's rounds are every leader's in the window, together (a loop changes leader, and
  is one loop); its ``pending`` is the live index's pending tasks now.
- A route is its method and template over every status class and process. Routes that
  wait on purpose are left out: a bot's claim and message claim long-poll up to
  ``claim_max_wait_s``, and the dashboard's stream stays open; their time is not the hive's
  slowness.
- A view's lag is the log's head minus its position now; its rate the events it applied
  in the window.
- A database pool's waits are psycopg_pool's counters, which run from when the pool
  opened: requests that waited for a connection, and their mean wait, since the process
  started (the pool counts no window).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from domain.profile import LoopTimings, PoolWaits, ProcessTimings, RouteTimings, ViewTimings
from projections.process_stats import TimingsWindow
from projections.timings import Timing

WAITING_ROUTES = frozenset(
    {
        "POST /v1/bots/{bot_id}/claim",
        "POST /v1/bots/{bot_id}/messages/claim",
        "GET /dashboard/stream",
    }
)


class TimingsReader(Protocol):
    def window(self, seconds: float) -> TimingsWindow: ...


class MeasuredProcessTimings:
    """``runtime.profiler.ProcessTimingsSource`` over what the processes measured."""

    def __init__(self, stats: TimingsReader, pending: Callable[[], int]) -> None:
        self.stats = stats
        self.pending = pending

    def window(self, seconds: float) -> ProcessTimings:
        return process_timings(self.stats.window(seconds), self.pending())


def process_timings(w: TimingsWindow, pending: int) -> ProcessTimings:
    loops: list[LoopTimings] = []
    routes: dict[str, Timing] = {}
    views: list[ViewTimings] = []
    for name, t in sorted(w.hive.items()):
        kind, _, rest = name.partition(":")
        if kind == "loop" and t.count:
            loops.append(_loop(rest, t, pending))
        elif kind == "http":
            route = rest.rpartition(":")[0]  # "GET /v1/tasks:2xx" -> "GET /v1/tasks"
            if route not in WAITING_ROUTES:
                routes[route] = routes[route].merged(t) if route in routes else t
        elif kind == "view":
            views.append(ViewTimings(rest, w.lags.get(rest, 0), t.items / w.window_s))
    pools = [
        PoolWaits(
            f"{p.role} {p.host}:{p.pid}",
            u.name,
            u.queued,
            u.wait_ms / u.queued if u.queued else 0.0,
        )
        for p in w.processes
        if p.resources is not None
        for u in p.resources.pools
    ]
    return ProcessTimings(
        tuple(loops),
        tuple(
            RouteTimings(route, t.count, t.p50 or 0.0, t.p99 or 0.0)
            for route, t in sorted(routes.items())
            if t.count
        ),
        tuple(views),
        tuple(pools),
    )


def _loop(name: str, t: Timing, pending: int) -> LoopTimings:
    return LoopTimings(
        name,
        t.count,
        t.p50 or 0.0,
        t.p99 or 0.0,
        min(t.cpu_s / t.sum_s, 1.0) if t.sum_s > 0 else 0.0,
        t.items / t.count,
        pending,
    )
