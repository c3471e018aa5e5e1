"""The dispatcher: assigns pending tasks to bots, many per transaction.

Woken whenever work appears (a task becomes pending, capacity frees, a bot arrives), when
the next delayed task falls due (``wait_hint``), and by a periodic tick as a safety net.
Each round releases the delayed tasks now due, reads the live index, asks the routing
policy, and records all of its decisions in one save. The index must hear of the process's own
writes as they are recorded (the node registers it as a listener of the Hive), so the next
round sees the new loads without waiting for the follower.
"""

from __future__ import annotations

import itertools
import logging
import threading

from domain.cause import Cause
from domain.hive import Hive
from domain.policies.routing import route
from runtime.live import Changes, LiveIndex

log = logging.getLogger(__name__)


class Dispatcher:
    name = "dispatcher"

    def __init__(self, hive: Hive, index: LiveIndex, *, page: int = 2000) -> None:
        self.hive = hive
        self.index = index
        self.page = page
        self.wake = threading.Event()
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
        """One round; returns how many tasks were assigned."""
        self.index.release_due()  # before clearing: a release wakes us, this round serves it
        self.wake.clear()
        slots = self.index.slots()
        free = sum(max(s.free, 0) for s in slots)
        if free == 0:
            return 0
        open_slots = [s for s in slots if s.free > 0]
        pending = self.index.pending(
            min(self.page, free * 4),
            servable=lambda needs: any(needs <= s.capabilities for s in open_slots),
        )
        assignments = route(pending, slots)
        if not assignments:
            return 0
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        committed = self.hive.assign_tasks(assignments, cause)
        if len(committed.items) < len(assignments):
            log.info(
                "some tasks were no longer pending",
                extra={
                    "action": "dispatch_skipped",
                    "skipped": len(assignments) - len(committed.items),
                },
            )
        return len(committed.items)
