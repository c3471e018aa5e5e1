"""The degradation manager: the loop ``modes`` (one engine leads it) that applies the
degradation policy to the open incidents and records the mode it calls for.

Woken when the incidents change (whoever knows sets ``wake``), when the recorded mode
changes (an operator cleared theirs), and at the hysteresis deadline (``wait_hint``); a
slow tick is the net. ``calm_since`` (since when a lower mode is due) is kept in memory:
a new leader starts its calm over, which only delays the way down.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.policies.degradation import DegradationRules, ModeNow, OpenIncident, decide
from runtime.live_mode import LiveMode

log = logging.getLogger(__name__)

LOOP = "modes"

OpenIncidents = Callable[[], Sequence[OpenIncident]]


@runtime_checkable
class IncidentSource(Protocol):
    """Whoever knows the open incidents (the detector's model), and tells its
    ``listeners`` when one opens, moves or resolves."""

    listeners: list[Callable[[], object]]

    def open_incidents(self) -> Sequence[OpenIncident]: ...


class DegradationManager:
    name = LOOP

    def __init__(
        self,
        hive: Hive,
        mode: LiveMode,
        incidents: OpenIncidents,
        rules: DegradationRules,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.hive = hive
        self.mode = mode
        self.incidents = incidents
        self.rules = rules
        self.clock = clock
        self.wake = threading.Event()
        self.calm_since: datetime | None = None
        self.recheck_at: datetime | None = None
        self._rounds = itertools.count(1)
        mode.on_change(lambda _: self.wake.set())

    def run_once(self) -> int:
        """One look at the incidents; returns 1 when it recorded a new mode."""
        self.wake.clear()
        row = self.mode.row
        now = self.clock()
        d = decide(ModeNow(row.mode, row.held), self.incidents(), self.rules, self.calm_since, now)
        self.calm_since, self.recheck_at = d.calm_since, d.recheck_at
        if d.enter is None:
            return 0
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        committed = self.hive.modes.enter(d.enter, d.reason, d.incidents, cause)
        if committed.items:
            log.warning(
                "the policy changed the hive's mode",
                extra={
                    "action": "mode_entered",
                    "mode": d.enter,
                    "from": row.mode,
                    "rules": sorted({c["rule"] for c in d.incidents}),
                },
            )
        return len(committed.items)

    def wait_hint(self) -> float | None:
        """Seconds until the hysteresis may let the hive down (None: nothing waits)."""
        at = self.recheck_at
        return None if at is None else (at - self.clock()).total_seconds()

    def configure(self, rules: DegradationRules) -> None:
        self.rules = rules
        self.wake.set()
