"""This process's readiness, and the badge the dashboard shows: the hive's mode beside it.

Readiness is what this process can check: ``ready`` while every readiness check holds
(the database answers, each view runner is running, the live index has caught up, an
engine runs, every loop has a leader) and the database gate is open; otherwise the
failing checks and what each says. It is not the hive's mode (``domain/modes.py``: the
log's, the same in every process), and the badge shows the two apart.

A ``ReadinessWatch`` looks every second and tells the dashboard's streams when the badge
changed (readiness, or the hive's mode: ``tell`` is called when the mode's record moves),
so a page learns of an outage even when it can no longer fetch anything. Its last look
also says whether an engine is alive, which the process's mode reads (``api/mode_gate``).
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
NO_ENGINE = "engine"  # the check that fails when no engine process is alive


def checks_of(readiness: Readiness, gate: DatabaseGate) -> dict[str, str]:
    """The readiness checks, and the gate requests pass (down: every request gets 503)."""
    return {**readiness.check(), "database-gate": "down" if gate.down else "ok"}


def readiness_of(checks: dict[str, str]) -> dict[str, Any]:
    failing = {name: said for name, said in sorted(checks.items()) if said != "ok"}
    return {"ready": not failing, "failing": failing}


def badge_of(mode: dict[str, Any], readiness: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard's badge shows: the hive's mode (as this process acts on it) and,
    apart from it, this process's readiness."""
    return {**mode, "readiness": readiness}


class ReadinessWatch:
    """Reads the checks every ``interval`` seconds and calls ``changed(badge)`` when the
    badge moved (``mode()``: the hive's mode as the badge shows it)."""

    def __init__(
        self,
        checks: Callable[[], dict[str, str]],
        changed: Callable[[dict[str, Any]], None],
        mode: Callable[[], dict[str, Any]] = lambda: {"mode": "normal"},
        *,
        interval: float = WATCH_S,
    ) -> None:
        self.checks = checks
        self.changed = changed
        self.mode = mode
        self.interval = interval
        self.readiness: dict[str, Any] | None = None
        self.badge: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def engine_alive(self) -> bool:
        """As of the last look (alive until a look says otherwise)."""
        readiness = self.readiness
        return readiness is None or NO_ENGINE not in readiness["failing"]

    def look(self) -> dict[str, Any]:
        readiness = readiness_of(self.checks())
        if readiness != self.readiness:
            log.info(
                "readiness",
                extra={
                    "action": "readiness",
                    "ready": readiness["ready"],
                    "failing": ", ".join(readiness["failing"]),
                },
            )
            self.readiness = readiness
        self.tell()
        return readiness

    def tell(self) -> None:
        """Tell the streams the badge, if it moved (the hive's mode changed, or readiness)."""
        with self._lock:
            readiness = self.readiness or {"ready": True, "failing": {}}
            badge = badge_of(self.mode(), readiness)
            if badge == self.badge:
                return
            self.badge = badge
        self.changed(badge)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.look()
            stop.wait(self.interval)  # pacing between looks
