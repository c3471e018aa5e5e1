"""The autoscaler: one control loop (one leader across engines) sizing every pool.

Each round, per pool: observe its load in the live index (backlog it can serve, age of
the oldest pending task, tasks its bots hold, recent throughput), ask the policy for a
desired size (recorded as ``Pool.Resized`` only when it changes), then plan and act:
launch bots (``Launch.Requested`` first, then the process), drain the idlest (``Bot
.Draining`` + ``Launch.Stopping``), stop drained bots that hold nothing, and give up on
launches that never registered (``Launch.Failed``). Processes that exit are closed
(``Launch.Stopped`` or ``Launch.Failed``). Decisions are events first, actions second: a
crash between the two leaves an open launch that the timeout closes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import PersistenceError
from psycopg import Error as PsycopgError

from domain.cause import Cause
from domain.errors import HiveError
from domain.hive import Hive, utc_now
from domain.policies.scaling import (
    OpenLaunch,
    PoolBot,
    PoolLoad,
    backoff_s,
    decide,
    plan,
)
from runtime.live import Changes, LiveBot, LiveIndex
from runtime.scaling.book import LaunchBook
from runtime.scaling.launcher import Launcher
from runtime.scaling.pools import PoolConfig

log = logging.getLogger(__name__)

THROUGHPUT_WINDOW_S = 30.0
MIN_SAMPLES = 5  # finished tasks in the window before a throughput is believed


def _never(pool: str, bots: list[LiveBot], now: datetime) -> str | None:
    return None


class Autoscaler:
    name = "scaler"

    def __init__(
        self,
        hive: Hive,
        index: LiveIndex,
        book: LaunchBook,
        pools: Sequence[PoolConfig],
        launcher: Launcher,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hive = hive
        self.index = index
        self.book = book
        self.pools = list(pools)
        self.launcher = launcher
        self.clock = clock
        self.monotonic = monotonic
        self.wake = threading.Event()
        # Why not to launch into a pool now (None: launch as the policy plans): the hive's
        # mode holds back a pool whose bots keep failing while it is degraded.
        self.holding: Callable[[str, list[LiveBot], datetime], str | None] = _never
        self._finished: defaultdict[str, deque[float]] = defaultdict(deque)
        self._rounds = itertools.count(1)
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        now = self.monotonic()
        for bot_id in changes.finished_by:
            pool = self.index.pool_of(bot_id)
            if pool is not None:
                self._finished[pool].append(now)
        # Not woken by work: at thousands of tasks a second it would never rest. Its pace
        # (APIARY_SCALER_INTERVAL_S) bounds how late it sees a backlog.

    def run_once(self) -> int:
        """One round over every pool; returns how many actions it took."""
        self.wake.clear()
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        done = self._close_exited(cause)
        for pool in self.pools:
            done += self._size(pool, cause)
        return done

    # -- one pool ---------------------------------------------------------------------

    def _size(self, pool: PoolConfig, cause: Cause) -> int:
        limits = pool.limits()
        now = self.clock()
        caps = frozenset(pool.capabilities)
        backlog, oldest = self.index.backlog(lambda needs: needs <= caps)
        bots = self.index.bots_of(pool.name)
        load = PoolLoad(
            backlog=backlog,
            held=sum(held for _, held in bots),
            oldest_wait_s=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
            throughput_per_bot=self._throughput(pool.name, sum(1 for _ in bots)),
        )
        record = self.book.pool(pool.name)
        since = float("inf") if record.resized_at is None else (now - record.resized_at)
        since_s = since if isinstance(since, float) else since.total_seconds()
        decision = decide(limits, load, current=record.desired, since_change_s=since_s)
        done = 0
        if decision.desired != record.desired:
            self.hive.scaling.resize_pool(
                pool.name,
                decision.desired,
                decision.reason,
                {**decision.inputs, "pool": pool.name},
                cause,
            )
            log.info(
                "pool resized",
                extra={
                    "action": "pool_resized",
                    "pool": pool.name,
                    "from": record.desired,
                    "to": decision.desired,
                    "reason": decision.reason,
                },
            )
            done += 1
        return done + self._reconcile(pool, decision.desired, bots, now, cause)

    def _reconcile(
        self,
        pool: PoolConfig,
        desired: int,
        bots: list[tuple[LiveBot, int]],
        now: datetime,
        cause: Cause,
    ) -> int:
        limits = pool.limits()
        launches = self.book.open_launches(pool.name)
        by_bot = {lx.bot_id: lx for lx in launches if lx.bot_id is not None}
        live = set()
        pool_bots = []
        for bot, held in bots:
            bot_id = bot.bot_id
            live.add(bot_id)
            launch = by_bot.get(bot_id)
            if launch is None:
                continue  # started by hand: the autoscaler neither drains nor stops it
            pool_bots.append(
                PoolBot(
                    bot_id,
                    launch.launch_id,
                    bot.state,
                    held,
                    launch.requested_at.timestamp(),
                )
            )
        orphaned: dict[UUID, int | None] = {
            lx.launch_id: None
            for lx in launches
            if lx.bot_id is not None
            and lx.bot_id not in live
            and not self.launcher.owns(lx.launch_id)
        }
        if orphaned:  # its bot is gone and no process of ours is behind it
            self.hive.scaling.close_launches(orphaned, "its bot is gone", cause)
        record = self.book.pool(pool.name)
        since_failure = (
            float("inf") if record.failed_at is None else (now - record.failed_at).total_seconds()
        )
        todo = plan(
            limits,
            desired,
            pool_bots,
            [
                OpenLaunch(
                    lx.launch_id,
                    lx.bot_id is not None,
                    lx.state == "stopping",
                    (now - lx.requested_at).total_seconds(),
                )
                for lx in launches
                if lx.launch_id not in orphaned
            ],
            failures_in_a_row=record.failures_in_a_row,
            since_failure_s=since_failure,
        )
        if todo.empty:
            return len(orphaned)
        for launch_id in todo.give_up:
            self.launcher.stop(launch_id, kill=True)
        if todo.give_up:
            self.hive.scaling.close_launches(
                dict.fromkeys(todo.give_up),
                f"did not register within {limits.launch_timeout_s:g} s",
                cause,
            )
        holding = self.holding(pool.name, [b for b, _ in bots], now) if todo.launch else None
        if holding is not None:
            log.info(
                "pool launches held",
                extra={"action": "pool_held", "pool": pool.name, "launch": todo.launch,
                       "reason": holding},
            )  # fmt: skip
        elif todo.launch:
            self._launch(pool, todo.launch, cause)
        if todo.drain:
            self.hive.scaling.drain_launched_bots(
                {
                    b.bot_id: b.launch_id
                    for b in pool_bots
                    if b.bot_id in todo.drain and b.launch_id is not None
                },
                "scale down",
                cause,
            )
        for launch_id in todo.stop:
            self.launcher.stop(launch_id)
        log.info(
            "pool reconciled",
            extra={
                "action": "pool_reconciled",
                "pool": pool.name,
                "desired": desired,
                "launch": 0 if holding is not None else todo.launch,
                "drain": len(todo.drain),
                "stop": len(todo.stop),
                "give_up": len(todo.give_up),
                "backoff_s": backoff_s(limits, record.failures_in_a_row),
            },
        )
        # Stops only take effect when the process exits: they do not count as progress.
        launched = 0 if holding is not None else todo.launch
        return len(orphaned) + launched + len(todo.drain) + len(todo.give_up)

    def _launch(self, pool: PoolConfig, count: int, cause: Cause) -> None:
        requested = self.hive.scaling.request_launches(
            pool.name, count, self.launcher.name, "scale up", cause
        )
        for launch in requested.items:
            try:
                self.launcher.launch(launch.id, pool.template())
            except OSError as e:
                self.hive.scaling.close_launches({launch.id: None}, f"could not start: {e}", cause)

    def _close_exited(self, cause: Cause) -> int:
        exits = self.launcher.exited()
        if exits:
            self.hive.scaling.close_launches(exits, "process exited", cause)
        return len(exits)

    def _throughput(self, pool: str, bots: int) -> float | None:
        finished = self._finished[pool]
        horizon = self.monotonic() - THROUGHPUT_WINDOW_S
        while finished and finished[0] < horizon:
            finished.popleft()
        if len(finished) < MIN_SAMPLES or bots == 0:
            return None
        return len(finished) / THROUGHPUT_WINDOW_S / bots

    def configure(self, pools: Sequence[PoolConfig]) -> None:
        """The pools in force from now on (a change of the runtime configuration)."""
        self.pools = list(pools)
        self.wake.set()

    def close(self) -> None:
        """Stop every bot this engine launched (they drain and deregister), and record
        their launches closed; a failure to record is left to the next leader."""
        self.launcher.close()
        try:
            self._close_exited(Cause.engine(self.name, "shutdown"))
        except (PersistenceError, PsycopgError, HiveError) as e:
            log.warning(
                "could not record the launches closed at shutdown",
                extra={"action": "scaler_close", "error": type(e).__name__},
            )
