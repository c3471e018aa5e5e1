"""What a process says it uses: sane numbers, and its CPU share since the last sample."""

from __future__ import annotations

import os
import threading

import psutil
from psycopg_pool import ConnectionPool

from runtime.resources import ResourceMeter, rss_bytes


class Ticks:
    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def test_memory_is_the_resident_set() -> None:
    mine = psutil.Process(os.getpid()).memory_info().rss
    assert 0.5 * mine <= rss_bytes() <= 2 * mine


def test_the_cpu_share_is_cpu_time_over_wall_time_since_the_last_sample() -> None:
    meter = ResourceMeter({}, clock=Ticks(100.0, 102.0, 104.0), cpu=Ticks(1.0, 2.5, 2.5))
    first, second = meter.sample(), meter.sample()
    assert (first.cpu_s, first.cpu_share) == (2.5, 0.75)  # 1.5 s of CPU in 2 s
    assert (second.cpu_s, second.cpu_share) == (2.5, 0.0)
    assert first.threads == threading.active_count()
    assert first.rss_bytes > 0


def test_each_pool_is_reported_by_its_name() -> None:
    pool: ConnectionPool = ConnectionPool(
        "postgresql://nowhere.invalid/x", min_size=1, max_size=3, open=False
    )
    r = ResourceMeter({"reads": pool}).sample()
    (use,) = r.pools
    assert (use.name, use.available, use.max_size, use.waiting) == ("reads", 0, 3, 0)
    assert use.size == pool.get_stats()["pool_size"]  # those open, or being opened
    assert (use.requests, use.queued, use.wait_ms) == (0, 0, 0)
    assert r.connections == use.size
