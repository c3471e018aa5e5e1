"""The config in force, in memory: every process's parts read their knobs from here.

Starts from the config view and follows the log like every live model; a version applies
only right after the one before it. Until the first version exists (a new hive), the
knobs are those the process was started with, which will seed it. ``on_change`` registers
a part's ``configure(knobs)``: called at once with the knobs in force and again on every
new version, so a part never keeps a copy that the log has moved past.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from pydantic import ValidationError

from domain.aggregate import event_topics
from domain.config import HiveConfig
from projections.config_reads import config_in_force
from runtime.config import Knobs
from runtime.models import LiveModel

log = logging.getLogger(__name__)


class LiveConfig(LiveModel):
    name = "config"
    topics = event_topics(HiveConfig)
    handles = frozenset({HiveConfig.Seeded, HiveConfig.Changed})

    def __init__(self, knobs: Knobs) -> None:
        self.position = 0
        self.lock = threading.RLock()
        self.version = 0  # 0: no version yet; ``knobs`` are the process's own
        self.knobs = knobs
        self.listeners: list[Callable[[Knobs], None]] = []

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        position, row = config_in_force(conn)
        if row is not None:  # the version in force at the view's position, however far on
            self._take(row.version, row.document, from_view=True)
        return position

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        for _, e in events:
            if isinstance(e, HiveConfig.Seeded | HiveConfig.Changed):
                self._take(e.originator_version, e.document)

    def on_change(self, configure: Callable[[Knobs], None]) -> None:
        with self.lock:
            self.listeners.append(configure)
            knobs = self.knobs
        configure(knobs)

    def _take(self, version: int, document: str, *, from_view: bool = False) -> None:
        with self.lock:
            if version <= self.version or (version != self.version + 1 and not from_view):
                return  # seen already, or one is missing in between: the feed brings it
            try:
                knobs = Knobs.parse(document)
            except ValidationError as e:  # written by a newer release: keep what we have
                log.error(
                    "config version not understood; keeping the one in force",
                    extra={"action": "config_unreadable", "version": version, "error": str(e)},
                )
                self.version = version
                return
            self.version, self.knobs = version, knobs
            # Under the lock: two versions taken by two threads at once (the feed, and a
            # request's own write) reach every part in the order of their versions.
            for configure in self.listeners:
                configure(knobs)
        log.info("config in force", extra={"action": "config_applied", "version": version})
