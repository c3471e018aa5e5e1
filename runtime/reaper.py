"""The lease reaper: a bot that stops heartbeating is lost, and its tasks go back to pending.

Each round: live bots whose lease lapsed are marked lost together with the release of the
tasks they held (one save per bot); then any task still held by a bot that is not live
(an assignment that raced with the loss, or a deregistration) is released. Both are safe
to repeat: releasing a task the bot no longer holds changes nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from uuid import UUID

from domain.cause import Cause
from domain.errors import NotFound
from domain.hive import Hive
from runtime.live import LiveIndex
from store.liveness import Liveness

log = logging.getLogger(__name__)


class LeaseReaper:
    name = "reaper"

    def __init__(self, hive: Hive, index: LiveIndex, liveness: Liveness, *, grace_s: float):
        self.hive = hive
        self.index = index
        self.liveness = liveness
        self.grace_s = grace_s
        self._first_seen: dict[UUID, float] = {}
        self._rounds = itertools.count(1)

    def run_once(self) -> int:
        """One round; returns how many bots were marked lost."""
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        lost = 0
        for bot_id in self.liveness.lapsed(self._old_enough(), self.grace_s):
            held = self.index.held_by(bot_id)
            try:
                self.hive.fleet.lose(bot_id, held, "heartbeat lease expired", cause)
            except NotFound:
                continue
            lost += 1
            log.warning(
                "bot lost; its tasks return to pending",
                extra={"action": "bot_lost", "bot_id": str(bot_id), "released": len(held)},
            )
        for bot_id, task_ids in self.index.orphans().items():
            self.hive.tasks.release(bot_id, task_ids, "bot is no longer live", cause)
        return lost

    def _old_enough(self) -> list[UUID]:
        """Live bots seen for at least the grace period (a new one may not have renewed yet)."""
        now = time.monotonic()
        live = self.index.live_bots()
        self._first_seen = {b: self._first_seen.get(b, now) for b in live}
        return [b for b, seen in self._first_seen.items() if now - seen >= self.grace_s]
