"""What the bottleneck report reads of the processes' timings (``runtime/process_timings.py``)."""

from __future__ import annotations

from uuid import uuid4

from projections.histogram import BUCKETS, bucket_of
from projections.process_stats import ProcessWindow, TimingsWindow
from projections.timings import Timing
from runtime.process_timings import process_timings
from store.processes import PoolUse, Resources


def timing(*seconds: float, cpu_s: float = 0.0, items: int = 0) -> Timing:
    counts = [0] * BUCKETS
    for s in seconds:
        counts[bucket_of(s)] += 1
    return Timing(tuple(counts), len(seconds), sum(seconds), cpu_s, items, len(seconds))


def test_loops_routes_views_and_pools_as_the_rules_read_them() -> None:
    pool = PoolUse("log", 4, 1, 8, 0, requests=100, queued=10, wait_ms=250)
    engine = ProcessWindow(uuid4(), "engine", "h1", 42, Resources(1.0, 0.9, 1, 9, (pool,)), {})
    gone = ProcessWindow(uuid4(), "api", "h2", 43, None, {})  # its minutes count, not its pools
    window = TimingsWindow(
        60.0,
        [engine, gone],
        {
            "loop:dispatcher": timing(0.04, 0.05, cpu_s=0.081, items=4000),
            "http:POST /v1/tasks:2xx": timing(0.01, 0.01),
            "http:POST /v1/tasks:5xx": timing(0.5),
            "http:POST /v1/bots/{bot_id}/claim:2xx": timing(30.0),  # a long-poll: waits
            "view:tasks": timing(0.1, items=1200),
            "save": timing(0.002),
        },
        {"tasks": 300},
    )
    found = process_timings(window, pending=2000)
    [loop] = found.loops
    assert (loop.name, loop.rounds, loop.items, loop.pending) == ("dispatcher", 2, 2000.0, 2000)
    assert abs(loop.cpu_share - 0.9) < 1e-9
    assert 0.04 <= loop.p99_s <= 0.05 * 1.47
    [route] = found.routes  # the status classes together; the long-poll left out
    assert (route.route, route.count) == ("POST /v1/tasks", 3)
    [view] = found.views
    assert (view.view, view.lag_events, view.events_per_s) == ("tasks", 300, 20.0)
    [waits] = found.pools
    assert (waits.process, waits.pool, waits.waiting, waits.wait_ms) == (
        "engine h1:42",
        "log",
        10,
        25.0,
    )
