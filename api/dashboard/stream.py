"""Server-sent events for the dashboard: "the views moved", pushed as they move.

The view runners publish ``<view>:<position>`` on ``apiary_views`` after every page they
apply; this process hears them (one LISTEN connection for all pages) and wakes every
open stream. A stream coalesces what it heard into one event per wake-up, so a burst of
thousands of tasks costs each browser a handful of refreshes, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import orjson

KEEPALIVE_S = 15.0


class ViewBroadcast:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.positions: dict[str, int] = {}

    def heard(self, view: str, position: int) -> None:
        """From the LISTEN thread: remember, and wake every stream."""
        with self._lock:
            self.positions[view] = max(self.positions.get(view, 0), position)
            streams = list(self._streams)
        for loop, event in streams:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    async def events(self, closing: asyncio.Event | None = None) -> AsyncIterator[bytes]:
        """One SSE stream: a ``views`` event whenever the views moved; a comment as a
        keep-alive when nothing did for a while."""
        woken = asyncio.Event()
        entry = (asyncio.get_running_loop(), woken)
        with self._lock:
            self._streams.add(entry)
        try:
            yield b"retry: 2000\n\n"
            while closing is None or not closing.is_set():
                try:
                    await asyncio.wait_for(woken.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                woken.clear()
                with self._lock:
                    data = orjson.dumps(self.positions)
                yield b"event: views\ndata: " + data + b"\n\n"
        finally:
            with self._lock:
                self._streams.discard(entry)
