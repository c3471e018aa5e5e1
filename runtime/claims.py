"""The claim long-poll: a bot asks for its assignments and waits until there are some.

Waiting costs no thread: each waiting claim is an asyncio future woken (thread-safely) when
the live index applies an assignment to that bot, with a periodic re-check as the safety
net. The tasks handed out are re-read from the log, so a claim never returns a task that
the log says is no longer assigned to the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from starlette.concurrency import run_in_threadpool

from domain.hive import Hive
from domain.tasks import Task, TaskState
from runtime.live import Changes, LiveIndex

RECHECK_S = 1.0


@dataclass(frozen=True)
class ClaimedTask:
    task_id: UUID
    type: str
    priority: int
    capabilities: list[str]
    payload_json: str
    fencing_token: int


class ClaimBoard:
    def __init__(self, hive: Hive, index: LiveIndex) -> None:
        self.hive = hive
        self.index = index
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: defaultdict[UUID, set[asyncio.Event]] = defaultdict(set)
        self.closing = False
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        loop = self.loop
        if loop is None or not changes.assigned_to:
            return
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits on it
            loop.call_soon_threadsafe(self._wake, set(changes.assigned_to))

    def _wake(self, bot_ids: set[UUID]) -> None:
        """Runs in the event loop's thread: the only thread that touches ``waiters``."""
        for bot_id in bot_ids:
            for event in self.waiters.get(bot_id, ()):
                event.set()

    def close(self) -> None:
        """Shutting down: every waiting claim answers now (empty), none waits from here on."""
        self.closing = True
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake, set(self.waiters))

    async def claim(self, bot_id: UUID, max_tasks: int, wait_s: float) -> list[ClaimedTask]:
        self.loop = asyncio.get_running_loop()
        deadline = time.monotonic() + wait_s
        event = asyncio.Event()
        self.waiters[bot_id].add(event)
        try:
            while True:
                event.clear()
                tasks = await self._assigned(bot_id, max_tasks)
                remaining = deadline - time.monotonic()
                if tasks or remaining <= 0 or self.closing:
                    return tasks
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, RECHECK_S))
        finally:
            waiters = self.waiters.get(bot_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self.waiters[bot_id]

    async def _assigned(self, bot_id: UUID, max_tasks: int) -> list[ClaimedTask]:
        held = self.index.assigned_to(bot_id, max_tasks)
        if not held:
            return []
        tokens = dict(held)
        found = self.hive.cached_many(Task, tokens)
        if found is None:
            # The cache may be behind another process; that is fine here: a start for a
            # task that is no longer this bot's is refused, and the bot drops it.
            found = await run_in_threadpool(
                partial(self.hive.load_many, Task, list(tokens), fresh=False)
            )
        return [
            ClaimedTask(t.id, t.type, t.priority, t.capabilities, t.payload, t.fencing_token)
            for task_id in tokens
            if (t := found.get(task_id)) is not None
            and t.state is TaskState.ASSIGNED
            and t.bot_id == bot_id
        ]
