"""The hive's mode as recorded, in memory: every process reads it here, O(1).

Starts from the mode view and follows the log like every live model (its own process's
writes at once too); an event applies only right after the one before it, so the feed's
later copy changes nothing. Two processes therefore never disagree for longer than the
feed's latency. ``on_change`` registers what must hear of a new mode at once (the
dispatcher, which holds work in maintenance; the dashboard's stream; the mode loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.modes import HiveMode
from projections.mode_view import ModeRow, mode_recorded
from runtime.models import LiveModel

log = logging.getLogger(__name__)


class LiveMode(LiveModel):
    name = "mode"
    topics = event_topics(HiveMode)
    handles = frozenset({HiveMode.Opened, HiveMode.Entered, HiveMode.Set, HiveMode.Cleared})

    def __init__(self) -> None:
        self.position = 0
        self.lock = threading.Lock()
        self.row = ModeRow()  # replaced whole, never changed: a read needs no lock
        self.listeners: list[Callable[[ModeRow], None]] = []

    @property
    def mode(self) -> str:
        return self.row.mode

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        position, row = mode_recorded(conn)
        with self.lock:
            if row.version > self.row.version:
                self.row = row
        return position

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        for _, e in events:
            if isinstance(e, HiveMode.Event):
                self._take(ModeRow.after(e))

    def on_change(self, heard: Callable[[ModeRow], None]) -> None:
        self.listeners.append(heard)

    def _take(self, row: ModeRow) -> None:
        with self.lock:
            if row.version != self.row.version + 1:
                return  # seen already, or one is missing in between: the feed brings it
            before, self.row = self.row, row
            # Under the lock: listeners hear the modes in the order of their versions.
            for heard in self.listeners:
                heard(row)
        if before.mode != row.mode:
            log.info(
                "hive mode",
                extra={
                    "action": "hive_mode",
                    "mode": row.mode,
                    "from": before.mode,
                    "set_by": row.set_by,
                    "actor": row.actor,
                },
            )
