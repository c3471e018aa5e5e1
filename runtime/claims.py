"""The claim long-poll: a bot asks for its assignments and waits until there are some.

Waiting costs no thread (``runtime/doorbell.py``): a waiting claim is woken (thread-safely)
when the live index applies an assignment to that bot, with a periodic re-check as the
safety net. The tasks handed out are re-read from the log, so a claim never returns a task that
the log says is no longer assigned to the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from uuid import UUID

from starlette.concurrency import run_in_threadpool

from domain.hive import Hive
from domain.tasks import Task, TaskState
from runtime.doorbell import Doorbell
from runtime.live import Changes, LiveIndex


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
        self.doorbell = Doorbell()
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        if changes.assigned_to:
            self.doorbell.ring(changes.assigned_to)

    def config_changed(self) -> None:
        """Every waiting claim answers now: its bot learns of the new version."""
        self.doorbell.ring_all()

    def close(self) -> None:
        """Shutting down: every waiting claim answers now (empty), none waits from here on."""
        self.doorbell.close()

    async def claim(self, bot_id: UUID, max_tasks: int, wait_s: float) -> list[ClaimedTask]:
        return await self.doorbell.poll(bot_id, wait_s, partial(self._assigned, bot_id, max_tasks))

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
