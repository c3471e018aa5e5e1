"""Routing: which bot gets which pending task. Pure: (pending tasks, bots) -> assignments.

Tasks are taken highest priority first, oldest first within a priority (``seq`` is the
position of the task's submission in the log). Each goes to the live bot that has every
required capability and the most free slots; ties go to the lower load ratio, then the id.
Each decision carries the inputs that made it, recorded on the ``Task.Assigned`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

POLICY = "most-free-slots"


@dataclass(frozen=True)
class PendingTask:
    task_id: UUID
    priority: int
    seq: int
    capabilities: frozenset[str]

    @property
    def order(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


@dataclass
class BotSlots:
    bot_id: UUID
    capabilities: frozenset[str]
    capacity: int
    load: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.load


@dataclass(frozen=True)
class Assignment:
    task_id: UUID
    bot_id: UUID
    why: dict[str, Any] = field(compare=False)


def route(pending: Iterable[PendingTask], bots: Sequence[BotSlots]) -> list[Assignment]:
    """Assign as many pending tasks as free capacity allows, in priority order.

    ``bots`` is mutated only in copies: the caller's loads are left as they were.
    """
    slots = [BotSlots(b.bot_id, b.capabilities, b.capacity, b.load) for b in bots]
    able: dict[frozenset[str], list[BotSlots]] = {}
    assignments: list[Assignment] = []
    for task in sorted(pending, key=lambda t: t.order):
        candidates = able.get(task.capabilities)
        if candidates is None:
            candidates = [b for b in slots if task.capabilities <= b.capabilities]
            able[task.capabilities] = candidates
        free = [b for b in candidates if b.free > 0]
        if not free:
            continue
        chosen = max(free, key=lambda b: (b.free, -b.load / b.capacity, -b.bot_id.int))
        assignments.append(Assignment(task.task_id, chosen.bot_id, _why(task, chosen, free)))
        chosen.load += 1
    return assignments


def _why(task: PendingTask, chosen: BotSlots, free: list[BotSlots]) -> dict[str, Any]:
    return {
        "policy": POLICY,
        "required": sorted(task.capabilities),
        "free_slots": chosen.free,
        "load": chosen.load,
        "capacity": chosen.capacity,
        "candidates": len(free),
    }
