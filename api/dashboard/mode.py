"""The hive's mode as the dashboard shows it, derived from what the process can check.

There is no degradation policy yet, so the mode says no more than the checks do:
``normal`` while every readiness check holds (the database answers, each view runner is
running, the live index has caught up) and the database gate is open; ``degraded``
otherwise, with the failing checks and what each says. A ``ModeWatch`` looks every
second and tells the dashboard's streams when the mode changes, so a page learns of an
outage even when it can no longer fetch anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from api.ports import Readiness
from store.health import DatabaseGate

log = logging.getLogger(__name__)

WATCH_S = 1.0


def checks_of(readiness: Readiness, gate: DatabaseGate) -> dict[str, str]:
    """The readiness checks, and the gate requests pass (down: every request gets 503)."""
    return {**readiness.check(), "database-gate": "down" if gate.down else "ok"}


def mode_of(checks: dict[str, str]) -> dict[str, Any]:
    failing = {name: said for name, said in sorted(checks.items()) if said != "ok"}
    return {"mode": "degraded" if failing else "normal", "failing": failing}


class ModeWatch:
    """Reads the mode every ``interval`` seconds and calls ``changed(mode)`` when it moved."""

    def __init__(
        self,
        checks: Callable[[], dict[str, str]],
        changed: Callable[[dict[str, Any]], None],
        *,
        interval: float = WATCH_S,
    ) -> None:
        self.checks = checks
        self.changed = changed
        self.interval = interval
        self.mode: dict[str, Any] | None = None

    def look(self) -> dict[str, Any]:
        mode = mode_of(self.checks())
        if mode != self.mode:
            failing = ", ".join(mode["failing"])
            log.info(
                "hive mode", extra={"action": "hive_mode", "mode": mode["mode"], "failing": failing}
            )
            self.mode = mode
            self.changed(mode)
        return mode

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.look()
            stop.wait(self.interval)  # pacing between looks
