"""The launch book: what the autoscaler knows of pools and launches, in memory.

It starts from a snapshot of the scaling view and then hears every Pool and Launch event
(the live index feed's observers and the Hive's own writes), applied once each, in
version order, like the live index. Any engine can therefore take over the scaler's
lead and know at once which launches are open and how large each pool should be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.launches import Launch
from domain.pools import Pool
from projections.live_reads import pools_and_open_launches
from runtime.models import LiveModel

TOPICS = (*event_topics(Pool), *event_topics(Launch))


@dataclass
class LaunchRecord:
    launch_id: UUID
    pool: str
    launcher: str
    state: str  # requested, registered or stopping: closed ones leave the book
    bot_id: UUID | None
    requested_at: datetime
    version: int


@dataclass
class PoolRecord:
    desired: int
    resized_at: datetime | None
    version: int
    failures_in_a_row: int = 0
    failed_at: datetime | None = None


class LaunchBook(LiveModel):
    name = "launch-book"
    topics = TOPICS
    handles = frozenset(
        {
            Pool.Opened,
            Pool.Resized,
            Launch.Requested,
            Launch.Registered,
            Launch.Stopping,
            Launch.Stopped,
            Launch.Failed,
        }
    )

    def __init__(self) -> None:
        self.position = 0
        self.lock = threading.RLock()
        self.launches: dict[UUID, LaunchRecord] = {}
        self.pools: dict[str, PoolRecord] = {}
        self._pool_names: dict[UUID, str] = {}

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the scaling view; returns the view's position."""
        position, pools, launches = pools_and_open_launches(conn)
        with self.lock:
            for pid, name, desired, resized_at, version in pools:
                self._pool_names[pid] = name
                self.pools[name] = PoolRecord(desired, resized_at, version)
            for launch_id, pool, launcher, state, bot_id, at, version in launches:
                self.launches[launch_id] = LaunchRecord(
                    launch_id, pool, launcher, state, bot_id, at, version
                )
        return position

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        with self.lock:
            for _, e in events:
                if isinstance(e, Pool.Event):
                    self._apply_pool(e)
                elif isinstance(e, Launch.Event):
                    self._apply_launch(e)

    def _apply_pool(self, e: Any) -> None:
        if isinstance(e, Pool.Opened):
            self._pool_names[e.originator_id] = e.name
            record = self.pools.setdefault(e.name, PoolRecord(0, None, 1))
            record.version = max(record.version, 1)  # a launch's failure may have come first
            return
        name = self._pool_names.get(e.originator_id)
        pool = None if name is None else self.pools.get(name)
        if pool is None or e.originator_version != pool.version + 1:
            return
        pool.version = e.originator_version
        if isinstance(e, Pool.Resized):
            pool.desired, pool.resized_at = e.desired, e.timestamp

    def _apply_launch(self, e: Any) -> None:
        if isinstance(e, Launch.Requested):
            if e.originator_version == 1 and e.originator_id not in self.launches:
                self.launches[e.originator_id] = LaunchRecord(
                    e.originator_id, e.pool, e.launcher, "requested", None, e.timestamp, 1
                )
            return
        record = self.launches.get(e.originator_id)
        if record is None or e.originator_version != record.version + 1:
            return
        record.version = e.originator_version
        pool = self.pools.setdefault(record.pool, PoolRecord(0, None, 0))
        match e:
            case Launch.Registered():
                record.state, record.bot_id = "registered", e.bot_id
                pool.failures_in_a_row = 0
            case Launch.Stopping():
                record.state = "stopping"
            case Launch.Failed():
                del self.launches[record.launch_id]
                pool.failures_in_a_row += 1
                pool.failed_at = e.timestamp
            case Launch.Stopped():
                del self.launches[record.launch_id]

    # -- reading ----------------------------------------------------------------------

    def open_launches(self, pool: str) -> list[LaunchRecord]:
        with self.lock:
            return [r for r in self.launches.values() if r.pool == pool]

    def pool(self, name: str) -> PoolRecord:
        with self.lock:
            record = self.pools.get(name)
            return PoolRecord(0, None, 0) if record is None else PoolRecord(**vars(record))
