"""Read-your-writes: wait until every view has applied a given log position."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from psycopg_pool import ConnectionPool

from projections.runner import VIEWS_CHANNEL
from store.follower import Wakeup


class ViewPositions:
    """Knows how far each view has got, from ``apiary_views`` notifications and the table."""

    def __init__(self, pool: ConnectionPool[Any], conninfo: str, views: tuple[str, ...]) -> None:
        self.pool = pool
        self.views = views
        self.known: dict[str, int] = dict.fromkeys(views, 0)
        self.changed = threading.Condition()
        self.listeners: list[Callable[[str, int], None]] = []  # (view, position), any view
        self.wakeup = Wakeup(conninfo, VIEWS_CHANNEL, on_notify=self._heard)

    def start(self) -> ViewPositions:
        self.wakeup.start()
        return self

    def stop(self) -> None:
        self.wakeup.stop()

    def wait(self, position: int, timeout: float) -> bool:
        """True once every view has applied ``position``; False after ``timeout`` seconds.

        Woken by notifications; when none comes for a while it reads the table itself.
        """
        deadline = time.monotonic() + timeout
        with self.changed:
            if not self._reached(position):
                self._refresh_locked()
            while not self._reached(position):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self.changed.wait(min(remaining, 0.5)):
                    self._refresh_locked()
        return True

    def refresh(self) -> None:
        with self.changed:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT view, position FROM projection_positions WHERE view = ANY(%s)",
                (list(self.views),),
            ).fetchall()
        for view, position in rows:
            self.known[view] = max(self.known[view], position)

    def _reached(self, position: int) -> bool:
        return min(self.known.values()) >= position

    def heard(self, view: str, position: int) -> None:
        """A view's new position, as the notifications say it: a waiter that is not
        started hears them from one that is (one LISTEN for both)."""
        if view in self.known:
            with self.changed:
                self.known[view] = max(self.known[view], position)
                self.changed.notify_all()

    def _heard(self, payload: str | None) -> None:
        if payload:
            view, _, pos = payload.partition(":")
            if pos.isdigit():
                for listener in self.listeners:
                    listener(view, int(pos))
                self.heard(view, int(pos))
