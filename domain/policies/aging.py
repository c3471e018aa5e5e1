"""Aging: waiting raises a task's effective priority, so that low priority never starves.

    effective = min(priority + waited_s / step_s, CEILING)      CEILING = MAX_PRIORITY + 1

Tasks go highest effective priority first, then oldest first (the time since when each
waits, then log position). A task waits from its submission, or from its ``not_before``
when it was delayed: time spent delayed on purpose earns no priority. A task that has
waited ``(CEILING - priority) * step_s`` is at the ceiling: above every task that waited
less, whatever its priority, and behind only tasks that are older than it (they are at
the ceiling too). The ceiling is what bounds the wait: without it a fresh task of
priority 9 would still overtake a task that has waited for ever but started lower. Within
one priority the order is plain age, so a queue kept oldest first per priority is already
in this order: merging those queues gives the global order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from domain.tasks import MAX_PRIORITY

CEILING = MAX_PRIORITY + 1


class Waiting(Protocol):
    @property
    def priority(self) -> int: ...

    @property
    def since(self) -> float: ...  # waiting since, in seconds since the epoch

    @property
    def seq(self) -> int: ...  # log position of the submission


@dataclass(frozen=True)
class Aging:
    step_s: float = 30.0  # waiting this long is worth one step of priority

    def __post_init__(self) -> None:
        if not self.step_s > 0:
            raise ValueError("an aging step must be a positive number of seconds")

    def effective(self, priority: int, waited_s: float) -> float:
        return min(priority + max(waited_s, 0.0) / self.step_s, CEILING)

    def order(self, now: float) -> Callable[[Waiting], tuple[float, float, int]]:
        """The sort key at ``now``: most urgent first."""
        step = self.step_s

        def key(t: Waiting) -> tuple[float, float, int]:
            waited = now - t.since
            eff = t.priority + (waited / step if waited > 0 else 0.0)
            return (-eff if eff < CEILING else -CEILING, t.since, t.seq)

        return key

    def wait_bound_s(self, priority: int) -> float:
        """How long a task of ``priority`` waits before it reaches the ceiling."""
        return (CEILING - priority) * self.step_s
