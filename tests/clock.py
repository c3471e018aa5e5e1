"""The hive's time in tests: a clock the test moves (a port we own, never the real one)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # where the ``clock`` fixture starts


class FakeClock:
    """Returns ``now``; ``advance`` moves it (by a timedelta or seconds). Safe to read from
    the engine's threads while the test moves it. ``monotonic`` reads the same time as
    seconds, for what takes a ``time.monotonic`` (the key ring's cache)."""

    def __init__(self, now: datetime = EPOCH) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def monotonic(self) -> float:
        """Seconds since ``EPOCH``."""
        return (self() - EPOCH).total_seconds()

    def advance(self, by: timedelta | float) -> None:
        with self._lock:
            self.now += by if isinstance(by, timedelta) else timedelta(seconds=by)
