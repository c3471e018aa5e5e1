"""What this process uses, sampled at each beat (``store.processes.Resources``).

CPU is the process's own (``time.process_time``: every thread's), and its share of one
core since the last sample; memory is the resident set, read from ``/proc/self/statm``
(one small read; psutil where there is no ``/proc``); threads are Python's; each pool's
numbers are psycopg_pool's own counters (``get_stats``: read, never reset, so nothing
else that reads them is disturbed). A sample costs tens of microseconds, twice a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from store.processes import PoolUse, Resources

STATM = "/proc/self/statm"


class ResourceMeter:
    """Samples the process and ``pools`` (by the name a report shows them under)."""

    def __init__(
        self,
        pools: Mapping[str, ConnectionPool[Any]],
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.pools = dict(pools)
        self.clock, self.cpu = clock, cpu
        self._last = (clock(), cpu())

    def sample(self) -> Resources:
        now, cpu_s = self.clock(), self.cpu()
        then, cpu_then = self._last
        self._last = (now, cpu_s)
        share = (cpu_s - cpu_then) / (now - then) if now > then else 0.0
        return Resources(
            cpu_s=round(cpu_s, 3),
            cpu_share=round(max(share, 0.0), 3),
            rss_bytes=rss_bytes(),
            threads=threading.active_count(),
            pools=tuple(pool_use(name, pool) for name, pool in self.pools.items()),
        )


def pool_use(name: str, pool: ConnectionPool[Any]) -> PoolUse:
    stats = pool.get_stats()
    return PoolUse(
        name=name,
        size=stats.get("pool_size", 0),
        available=stats.get("pool_available", 0),
        max_size=pool.max_size,
        waiting=stats.get("requests_waiting", 0),
        requests=stats.get("requests_num", 0),
        queued=stats.get("requests_queued", 0),
        wait_ms=stats.get("requests_wait_ms", 0),
    )


def rss_bytes() -> int:
    """The resident set: pages from ``/proc`` (Linux), else psutil's reading."""
    try:
        with open(STATM, "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except OSError:
        import psutil  # only off Linux: it costs a process object per call

        return int(psutil.Process().memory_info().rss)


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
