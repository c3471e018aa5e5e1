"""Long-polls per bot that wait without a thread: rung from any thread when a bot has news.

Each waiting poll is an asyncio event in the event loop's thread, set (thread-safely) when
someone rings for its bot, with a periodic re-check as the safety net. The task claim and
the message claim both wait on one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar
from uuid import UUID

T = TypeVar("T")

RECHECK_S = 1.0


class Doorbell:
    def __init__(self, recheck_s: float = RECHECK_S) -> None:
        self.recheck_s = recheck_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: defaultdict[UUID, set[asyncio.Event]] = defaultdict(set)
        self.closing = False
        self.rounds = 0  # of ``ring_all``: a poll that sees it move answers at once

    def ring(self, bot_ids: Iterable[UUID]) -> None:
        """From any thread: wake the polls waiting for these bots."""
        loop = self.loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits on it
            loop.call_soon_threadsafe(self._wake, set(bot_ids))

    def _wake(self, bot_ids: set[UUID]) -> None:
        """Runs in the event loop's thread: the only thread that touches ``waiters``."""
        for bot_id in bot_ids:
            for event in self.waiters.get(bot_id, ()):
                event.set()

    def ring_all(self) -> None:
        """From any thread: every waiting poll answers now, with what it has (news for
        every bot, such as a new config version, which the answer carries)."""
        loop = self.loop
        if loop is None:
            return
        self.rounds += 1
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake, set(self.waiters))

    def close(self) -> None:
        """Shutting down: every waiting poll answers now (empty), none waits from here on."""
        self.closing = True
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake, set(self.waiters))

    async def poll(
        self, bot_id: UUID, wait_s: float, fetch: Callable[[], Awaitable[list[T]]]
    ) -> list[T]:
        """``fetch()`` until it finds something, ``wait_s`` has passed or we shut down."""
        self.loop = asyncio.get_running_loop()
        deadline = time.monotonic() + wait_s
        rounds = self.rounds
        event = asyncio.Event()
        self.waiters[bot_id].add(event)
        try:
            while True:
                event.clear()
                found = await fetch()
                remaining = deadline - time.monotonic()
                if found or remaining <= 0 or self.closing or self.rounds != rounds:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self.recheck_s))
        finally:
            waiters = self.waiters.get(bot_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self.waiters[bot_id]
