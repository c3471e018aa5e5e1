"""The fleet room: register (with the bot's own key), drain, quarantine, lose, deregister."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.bots import Bot
from domain.cause import Cause
from domain.errors import InvalidInput, NotFound
from domain.hive.kernel import Committed, Kernel
from domain.hive.keys import IssuedKey, KeyCommands
from domain.hive.tasks import TaskCommands
from domain.keys import Role
from domain.launches import Launch
from domain.tasks import Task


class FleetCommands:
    """A bot's registration issues its key (through the keys room) in the same save."""

    def __init__(self, kernel: Kernel, keys: KeyCommands, tasks: TaskCommands) -> None:
        self.kernel = kernel
        self.keys = keys
        self.tasks = tasks  # whose retry policies decide for the attempts a lost bot ends

    def register(
        self,
        *,
        name: str,
        capabilities: list[str],
        max_concurrency: int,
        version_label: str,
        cause: Cause,
        pool: str | None = None,
        launch_id: UUID | None = None,
        takes_messages: bool = True,
    ) -> tuple[Bot, IssuedKey, int | None]:
        """A new bot, and the key it will use from now on (bound to its id). A bot that a
        launcher started names its launch, which records the registration in the same save."""
        bot_id = self.kernel.new_id()
        made: list[tuple[Bot, IssuedKey]] = []

        def register(found: dict[UUID, Any], at: datetime) -> list[Any]:
            # Made anew on each attempt: a failed save has consumed the last ones' events.
            bot = Bot.register(
                bot_id=bot_id,
                name=name,
                capabilities=capabilities,
                max_concurrency=max_concurrency,
                version_label=version_label,
                cause=cause,
                at=at,
                pool=pool,
                launch_id=launch_id,
                takes_messages=takes_messages,
            )
            issued = self.keys.new_key(
                f"bot-{bot_id.hex[:12]}", Role.BOT, bot_id, cause, at, name=name
            )
            made.append((bot, issued))
            if launch_id is None:
                return [bot, issued.key]
            launch = found.get(launch_id)
            if not isinstance(launch, Launch):
                raise InvalidInput(f"no launch {launch_id}", launch_id=launch_id)
            if launch.pool != pool:
                raise InvalidInput(f"launch {launch_id} is for pool {launch.pool}")
            launch.register(bot_id, cause, at)
            return [bot, issued.key, launch]

        ids = [] if launch_id is None else [launch_id]
        committed = self.kernel.execute(ids, register, fresh=True)
        bot, issued = made[-1]
        return bot, issued, committed.position

    def mark_lost(self, bot_id: UUID, reason: str, cause: Cause) -> Committed[Bot]:
        return self.kernel.change(Bot, [bot_id], lambda b, at: b.mark_lost(reason, cause, at))

    def lose(self, bot_id: UUID, held: Sequence[UUID], reason: str, cause: Cause) -> Committed[Bot]:
        """The bot went silent: mark it lost and return the tasks it held, in one save."""

        def lose(found: dict[UUID, Any], at: datetime) -> list[Any]:
            bot = found.get(bot_id)
            if not isinstance(bot, Bot):
                raise NotFound(f"no bot {bot_id}", id=bot_id)
            bot.mark_lost(reason, cause, at)
            tasks = [t for t in found.values() if isinstance(t, Task)]
            for task in tasks:
                task.expire_lease(bot_id, reason, cause, at, self.tasks.policies(task.type))
            return [bot, *tasks]

        c = self.kernel.execute([bot_id, *held], lose, fresh=True)
        return Committed([a for a in c.items if isinstance(a, Bot)], c.position, c.recorded)

    def drain(self, bot_ids: Sequence[UUID], reason: str, cause: Cause) -> Committed[Bot]:
        """No new work for these bots; they finish what they hold (then they can stop)."""
        return self.kernel.change(Bot, list(bot_ids), lambda b, at: b.drain(reason, cause, at))

    def quarantine(self, bot_id: UUID, reason: str, cause: Cause) -> Committed[Bot]:
        return self.kernel.change(Bot, [bot_id], lambda b, at: b.quarantine(reason, cause, at))

    def reinstate(self, bot_id: UUID, cause: Cause) -> Committed[Bot]:
        return self.kernel.change(Bot, [bot_id], lambda b, at: b.reinstate(cause, at))

    def deregister(self, bot_id: UUID, cause: Cause) -> Committed[Bot]:
        return self.kernel.change(Bot, [bot_id], lambda b, at: b.deregister(cause, at))
