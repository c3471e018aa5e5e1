"""A pool's scaling record: each change of its desired size, with the inputs that made it.

Only changes are recorded (a decision that keeps the size is not an event), so a pool's
history is short and reads as the story of the load: why it grew, why it shrank.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.names import check_short_name

POOL_NAMESPACE = UUID("b5e0c1a2-3d4f-4e5a-8b6c-7d8e9f0a1b2c")


def pool_id(name: str) -> UUID:
    return uuid5(POOL_NAMESPACE, name)


class Pool(HiveAggregate):
    class Opened(HiveAggregate.Created):
        name: str

    class Resized(HiveAggregate.Event):
        previous: int
        desired: int
        reason: str
        inputs: dict[str, Any]

        def apply(self, pool: Pool) -> None:
            pool.desired = self.desired
            pool.resized_at = self.timestamp

    def __init__(self, name: str, actor: str) -> None:
        self.name = name
        self.desired = 0
        self.resized_at: datetime | None = None

    @classmethod
    def open(cls, name: str, cause: Cause, at: datetime) -> Pool:
        check_short_name("pool", name)
        return cls._open(cls.Opened, id=pool_id(name), cause=cause, at=at, name=name)

    def resize(
        self, desired: int, reason: str, inputs: dict[str, Any], cause: Cause, at: datetime
    ) -> None:
        if desired != self.desired:
            self._record(
                self.Resized,
                cause,
                at,
                previous=self.desired,
                desired=desired,
                reason=reason,
                inputs=inputs,
            )
