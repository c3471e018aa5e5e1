"""The scaling room: pools' desired sizes, launches requested and closed, scale-down."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.hive.kernel import Committed, Kernel
from domain.launches import Launch
from domain.pools import Pool, pool_id


class ScalingCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def resize_pool(
        self, name: str, desired: int, reason: str, inputs: dict[str, Any], cause: Cause
    ) -> Committed[Pool]:
        """Record a pool's new desired size (opening the pool's record on first use)."""

        def resize(found: dict[UUID, Any], at: datetime) -> list[Any]:
            pool = found.get(pool_id(name)) or Pool.open(name, cause, at)
            pool.resize(desired, reason, inputs, cause, at)
            return [pool]

        return self.kernel.execute([pool_id(name)], resize, fresh=True)

    def request_launches(
        self, pool: str, count: int, launcher: str, reason: str, cause: Cause
    ) -> Committed[Launch]:
        at = self.kernel.clock()
        launches = [
            Launch.request(
                launch_id=self.kernel.new_id(),
                pool=pool,
                launcher=launcher,
                reason=reason,
                cause=cause,
                at=at,
            )
            for _ in range(count)
        ]
        return Committed.of(launches, self.kernel.save(launches))

    def close_launches(
        self, exits: Mapping[UUID, int | None], reason: str, cause: Cause
    ) -> Committed[Launch]:
        """Their processes are gone: a failure before registration, a stop after."""
        return self.kernel.change(
            Launch, list(exits), lambda lx, at: lx.close(exits[lx.id], cause, at, reason=reason)
        )

    def drain_launched_bots(
        self, bots: dict[UUID, UUID], reason: str, cause: Cause
    ) -> Committed[Bot]:
        """Scale-down: each bot (by id, with its launch id) drains and its launch is marked
        stopping, in one save."""

        def drain(found: dict[UUID, Any], at: datetime) -> list[Any]:
            changed: list[Any] = []
            for bot_id, launch_id in bots.items():
                bot, launch = found.get(bot_id), found.get(launch_id)
                if isinstance(bot, Bot) and bot.state is BotState.READY:
                    bot.drain(reason, cause, at)
                    changed.append(bot)
                    if isinstance(launch, Launch):
                        launch.stop(reason, cause, at)
                        changed.append(launch)
            return changed

        return self.kernel.execute([*bots, *bots.values()], drain, fresh=True)
