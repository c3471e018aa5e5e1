"""A launch: the autoscaler starting one bot process for a pool, from request to stop.

Life: requested -> registered (the bot it started registered, naming this launch) ->
stopping (chosen for scale-down: its bot drains) -> stopped; or requested -> failed (the
process exited, or never registered in time) and the pool's next decision may try again.
A launch is closed by exactly one of ``Failed`` and ``Stopped``; each is recorded once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidTransition
from domain.names import check_short_name, check_text


class LaunchState(StrEnum):
    REQUESTED = "requested"
    REGISTERED = "registered"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_open(self) -> bool:
        return self not in (LaunchState.STOPPED, LaunchState.FAILED)


class Launch(HiveAggregate):
    class Requested(HiveAggregate.Created):
        pool: str
        launcher: str  # which engine's launcher owns the process
        reason: str

    class Registered(HiveAggregate.Event):
        bot_id: UUID

        def apply(self, launch: Launch) -> None:
            launch.state = LaunchState.REGISTERED
            launch.bot_id = self.bot_id

    class Stopping(HiveAggregate.Event):
        reason: str

        def apply(self, launch: Launch) -> None:
            launch.state = LaunchState.STOPPING

    class Stopped(HiveAggregate.Event):
        exit_code: int | None

        def apply(self, launch: Launch) -> None:
            launch.state = LaunchState.STOPPED
            launch.exit_code = self.exit_code

    class Failed(HiveAggregate.Event):
        reason: str
        exit_code: int | None

        def apply(self, launch: Launch) -> None:
            launch.state = LaunchState.FAILED
            launch.exit_code = self.exit_code

    def __init__(self, pool: str, launcher: str, reason: str, actor: str) -> None:
        self.pool = pool
        self.launcher = launcher
        self.reason = reason
        self.state = LaunchState.REQUESTED
        self.bot_id: UUID | None = None
        self.exit_code: int | None = None

    @classmethod
    def request(
        cls, *, launch_id: UUID, pool: str, launcher: str, reason: str, cause: Cause, at: datetime
    ) -> Launch:
        check_short_name("pool", pool)
        return cls._open(
            cls.Requested,
            id=launch_id,
            cause=cause,
            at=at,
            pool=pool,
            launcher=check_text("launcher", launcher),
            reason=check_text("reason", reason),
        )

    def register(self, bot_id: UUID, cause: Cause, at: datetime) -> None:
        """Its bot registered. A re-registration (the bot was lost and came back under a new
        id) moves the launch to the new bot; after the launch closed, it is refused."""
        if not self.state.is_open:
            raise InvalidTransition(f"launch is {self.state}", launch_id=self.id)
        if self.bot_id != bot_id:
            self._record(self.Registered, cause, at, bot_id=bot_id)

    def stop(self, reason: str, cause: Cause, at: datetime) -> None:
        if self.state is LaunchState.REGISTERED:
            self._record(self.Stopping, cause, at, reason=check_text("reason", reason))

    def close(self, exit_code: int | None, cause: Cause, at: datetime, *, reason: str) -> None:
        """The process is gone. Before it ever registered that is a failure; after, a stop."""
        if not self.state.is_open:
            return
        if self.state is LaunchState.REQUESTED:
            self._record(self.Failed, cause, at, reason=reason, exit_code=exit_code)
        else:
            self._record(self.Stopped, cause, at, exit_code=exit_code)
