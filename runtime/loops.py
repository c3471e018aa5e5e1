"""Running a control loop: lead it (one engine at a time), step it, wait, survive failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import PersistenceError
from psycopg import Error as PsycopgError

from domain.errors import HiveError
from projections.timings import ProcessTimings
from store.leadership import Leadership

log = logging.getLogger(__name__)

MIN_WAIT_S = 0.001  # a hint already past still yields the CPU for a moment


@dataclass
class Loop:
    """``step`` returns how much it did; a busy loop goes again at once, an idle one waits
    for ``wake`` (set by whoever has news for it) or ``interval`` seconds at the most, or
    less when ``wait_hint`` says something falls due sooner (seconds; None: nothing).
    ``timings``: where each round it leads is counted (wall time, this thread's CPU time
    and the items it did), when the process keeps them."""

    name: str
    step: Callable[[], int]
    interval: float
    wake: threading.Event | None = None
    wait_hint: Callable[[], float | None] | None = None
    timings: ProcessTimings | None = None

    def wake_up(self) -> None:
        """Hurry a waiting round (to stop, or because there is news)."""
        if self.wake is not None:
            self.wake.set()

    def run(self, leadership: Leadership, stop: threading.Event, *, backoff: float = 0.5) -> None:
        wake = self.wake or threading.Event()
        while not stop.is_set():
            if not leadership.held():
                stop.wait(max(self.interval, backoff))
                continue
            try:
                if self._step() > 0:
                    continue
            except (PersistenceError, PsycopgError, HiveError) as e:
                log.warning(
                    "control loop step failed; retrying",
                    extra={"action": "loop_retry", "loop": self.name, "error": type(e).__name__},
                )
                stop.wait(backoff)
                continue
            except Exception:  # a bug must not silently stop the hive's loop: log it, go on
                log.exception(
                    "control loop step crashed", extra={"action": "loop_crash", "loop": self.name}
                )
                stop.wait(backoff)
                continue
            wake.wait(self._timeout())
        leadership.release()

    def _step(self) -> int:
        timings = self.timings
        if timings is None:
            return self.step()
        began, cpu = time.perf_counter(), time.thread_time()
        items = 0
        try:
            items = self.step()
            return items
        finally:  # a failed round took its time too (its items: none)
            timings.round(self.name, time.perf_counter() - began, time.thread_time() - cpu, items)

    def _timeout(self) -> float:
        hint = self.wait_hint() if self.wait_hint is not None else None
        if hint is None:
            return self.interval
        return min(self.interval, max(hint, MIN_WAIT_S))


def start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
