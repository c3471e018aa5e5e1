"""Server-sent events for the dashboard: "the views moved", pushed as they move.

The view runners publish ``<view>:<position>`` on ``apiary_views`` after every page they
apply; this process hears them (one LISTEN connection for all pages) and wakes every
open stream. A stream coalesces what it heard into one event per wake-up, so a burst of
thousands of tasks costs each browser a handful of refreshes, not thousands. While the hive
is degraded it coalesces more: after each ``views`` event a stream holds for ``hold_s()``
seconds (the config's ``degradation.stream_coalesce_s``), so the browsers ask less of a
hive in trouble.

It also carries the badge (``api/dashboard/readiness.py``: the hive's mode and this
process's readiness): a ``mode`` event when a stream opens and whenever the badge changes,
with the badge itself as data, since a page cannot fetch it while the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

KEEPALIVE_S = 15.0


class ViewBroadcast:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.positions: dict[str, int] = {}
        self.mode: dict[str, Any] | None = None
        self.closed = False
        self.hold_s: Callable[[], float] = lambda: 0.0  # after a views event (coalescing)

    def heard(self, view: str, position: int) -> None:
        """From the LISTEN thread: remember, and wake every stream."""
        with self._lock:
            self.positions[view] = max(self.positions.get(view, 0), position)
        self._wake()

    def mode_changed(self, mode: dict[str, Any]) -> None:
        """From the readiness watch: remember the badge, and wake every stream."""
        with self._lock:
            self.mode = mode
        self._wake()

    def close(self) -> None:
        """Shutting down: every open stream ends now (and one opened later at once), so
        that the server's graceful stop waits for none of them."""
        with self._lock:
            self.closed = True
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for loop, event in streams:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    async def events(self, closing: asyncio.Event | None = None) -> AsyncIterator[bytes]:
        """One SSE stream: a ``views`` event whenever the views moved, a ``mode`` event
        when it opens and when the mode changed; a comment as a keep-alive when nothing
        happened for a while."""
        woken = asyncio.Event()
        entry = (asyncio.get_running_loop(), woken)
        with self._lock:
            self._streams.add(entry)
        try:
            yield b"retry: 2000\n\n"
            sent_mode: dict[str, Any] | None = None
            sent_positions: dict[str, int] = {}
            while not self.closed and (closing is None or not closing.is_set()):
                with self._lock:
                    mode, positions = self.mode, dict(self.positions)
                if mode is not None and mode != sent_mode:
                    sent_mode = mode
                    yield b"event: mode\ndata: " + orjson.dumps(mode) + b"\n\n"
                if positions != sent_positions:
                    sent_positions = positions
                    yield b"event: views\ndata: " + orjson.dumps(positions) + b"\n\n"
                    hold = self.hold_s()
                    if hold > 0:  # pacing: what arrives meanwhile goes in the next event
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(_closed(closing), hold)
                try:
                    await asyncio.wait_for(woken.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                woken.clear()
        finally:
            with self._lock:
                self._streams.discard(entry)


async def _closed(closing: asyncio.Event | None) -> None:
    """Returns when the stream is closing (never, without ``closing``)."""
    await (closing or asyncio.Event()).wait()
