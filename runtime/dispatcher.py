"""The dispatcher: assigns pending tasks to bots, many per transaction.

Woken whenever work appears (a task becomes pending, capacity frees, a bot arrives), when
the next delayed task falls due (``wait_hint``), and by a periodic tick as a safety net.
Each round releases the delayed tasks now due, reads the live index and the learned
performance (both in memory: routing never waits on a query), asks the routing policy, and
records all of its decisions in one save. The index must hear of the process's own writes
as they are recorded (the node registers it as a listener of the Hive), so the next round
sees the new loads without waiting for the follower.

A new task need not wait for a round: while the dispatcher is idle in the process that
leads it, a submission asks it (``hand_off``) where its tasks go, and records their
assignments in its own transaction. Idle means no round is running and no news waits for
one, so every task still pending has been looked at already and no free bot could take
it: the new task jumps nobody. Capacity holds as in a round (the same lock serialises
rounds and hand-offs, and the index hears each save before the lock is released).

Each round first looks for pending tasks that no bot could ever do (no ready or
quarantined bot has what they need, and ``can_launch`` says no pool could start one) and
flags them, once, with one ``UnroutableTasks`` record per capability set (not an event
per task): a flagged task is not flagged again until an assignment has cleared the flag,
so an unchanged hive costs nothing but the look, per capability set.

While the hive is in maintenance (``paused``), no round runs and no submission is handed
off: new tasks are accepted and held. The mode's change wakes the dispatcher, so the held
work is routed at once when the hive leaves maintenance. While it is degraded, the bots
that failed an attempt lately (``shunned``) are avoided as a task avoids the bots that
failed it: one of them gets work only when no other bot that can do it has room.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from domain.cause import Cause
from domain.hive import Hive
from domain.hive.tasks import Place, Placement
from domain.policies.routing import DEFAULT, PendingTask, RoutingConfig, route
from runtime.live import Changes, LiveIndex, Unservable
from runtime.performance import LivePerformance

log = logging.getLogger(__name__)

CanLaunch = Callable[[frozenset[str]], bool]


def never(_: frozenset[str]) -> bool:
    return False


class Dispatcher:
    name = "dispatcher"

    def __init__(
        self,
        hive: Hive,
        index: LiveIndex,
        performance: LivePerformance,
        *,
        page: int = 2000,
        config: RoutingConfig = DEFAULT,
        can_launch: CanLaunch = never,
    ) -> None:
        self.hive = hive
        self.index = index
        self.performance = performance
        self.page = page
        self.config = config
        self.can_launch = can_launch
        self.wake = threading.Event()
        self.leading: Callable[[], bool] = lambda: False  # this process leads the loop
        self.paused: Callable[[], bool] = lambda: False  # the hive's mode holds work
        # Bots to keep away from while another has room (the hive's mode: degraded).
        self.shunned: Callable[[], frozenset[UUID]] = frozenset
        self._round = threading.Lock()  # a round, or a hand-off: one at a time
        self._rounds = itertools.count(1)
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        if changes.work:
            self.wake.set()

    def wait_hint(self) -> float | None:
        """Seconds until the next delayed task falls due (None: no task waits)."""
        due = self.index.next_due()
        return None if due is None else (due - self.index.clock()).total_seconds()

    def run_once(self) -> int:
        """One round; returns how many tasks it assigned or flagged."""
        with self._round:
            if self.paused():
                self.wake.clear()  # the mode's change wakes it again
                return 0
            return self._run_round()

    @contextmanager
    def hand_off(self) -> Iterator[Place | None]:
        """While the dispatcher is idle in the process that leads it, new tasks may be
        assigned in their own submission (no wait for a round, one transaction fewer).
        Idle: no round runs and no news waits for one, so every task still pending has
        been looked at and found no free bot; a new task then jumps nobody. Otherwise,
        or when another submission holds it: None, and the next round decides."""
        if (
            not self.leading()
            or self.wake.is_set()
            or self.paused()
            or not self._round.acquire(blocking=False)
        ):
            yield None
            return
        try:
            yield self._place
        finally:
            self._round.release()

    def _place(self, tasks: Sequence[PendingTask], at: datetime) -> Placement | None:
        """Where ``tasks`` (new, due) go, decided by the routing policy as in a round; None
        when news came since the last round (or a delayed task fell due): it decides."""
        due = self.index.next_due()
        if self.wake.is_set() or (due is not None and due <= at):
            return None
        slots = self.index.slots()
        if not any(s.free > 0 for s in slots):
            return None
        now = at.timestamp()
        assignments = route(
            _avoiding(tasks, self.shunned()), slots, self.performance.snapshot(), now, self.config
        )
        if not assignments:
            return None
        cause = Cause.engine(self.name, f"hand-off-{next(self._rounds)}")
        return Placement(assignments[: self.page], cause)  # a page at most, as a round

    def _run_round(self) -> int:
        self.index.release_due()  # before clearing: a release wakes us, this round serves it
        self.wake.clear()
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        flagged = self._flag_unroutable(cause)
        slots = self.index.slots()
        free = sum(max(s.free, 0) for s in slots)
        if free == 0:
            return flagged
        open_slots = [s for s in slots if s.free > 0]
        now = self.index.clock().timestamp()
        pending = self.index.pending(
            min(self.page, free * 4),
            servable=lambda needs: any(needs <= s.capabilities for s in open_slots),
            aging=self.config.aging,
            now=now,
        )
        assignments = route(
            _avoiding(pending, self.shunned()), slots, self.performance.snapshot(), now, self.config
        )
        if not assignments or self.paused():  # maintenance began while it routed: hold
            return flagged
        committed = self.hive.tasks.assign(assignments, cause)
        if len(committed.items) < len(assignments):
            log.info(
                "some tasks were no longer pending",
                extra={
                    "action": "dispatch_skipped",
                    "skipped": len(assignments) - len(committed.items),
                },
            )
        return flagged + len(committed.items)

    def _flag_unroutable(self, cause: Cause) -> int:
        flagged = 0
        for found in self.index.unservable(self.page):
            if self.can_launch(found.capabilities):
                continue
            self.hive.tasks.mark_unroutable(
                found.capabilities, found.task_ids, _reason(found), found.missing, cause
            )
            flagged += len(found.task_ids)
            log.warning(
                "pending tasks no bot can do",
                extra={
                    "action": "tasks_unroutable",
                    "flagged": len(found.task_ids),
                    "required": sorted(found.capabilities),
                    "missing": found.missing,
                },
            )
        return flagged


def _avoiding(tasks: Sequence[PendingTask], shunned: frozenset[UUID]) -> Sequence[PendingTask]:
    """The tasks, each also avoiding the ``shunned`` bots: routing gives a task to one of
    them only when no other bot that can do it has room (as it does a bot that failed the
    task itself), so the core keeps working on the healthy bots without starving."""
    if not shunned:
        return tasks
    return [t._replace(avoid=t.avoid | shunned) for t in tasks]


def _reason(found: Unservable) -> str:
    if found.missing:
        return f"no ready or quarantined bot has {', '.join(found.missing)}"
    return f"no ready or quarantined bot has all of {', '.join(sorted(found.capabilities))}"
