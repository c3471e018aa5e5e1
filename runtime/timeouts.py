"""Execution timeouts: an attempt that runs past its timeout is ended by the engine.

A task's timeout is its type's retry policy's ``timeout_s``, narrowed by its submission
(``retry.timeout_s``); an attempt's deadline is that long after its start, or after its
assignment when the start was not reported (as ``Task.deadline`` has it). The live index
keeps the deadlines of the held tasks that have one in ``Deadlines``, soonest first; the
``AttemptTimeouts`` loop wakes at the soonest and ends those past it with
``hive.tasks.time_out``, which decides from the log (a task that finished, or started
anew, meanwhile is left alone) and records ``RetryScheduled`` or ``DeadLettered`` with the
outcome ``timed-out``: its holder's late report is refused.

Nothing is kept, and nothing runs, while no policy has a timeout and no held task's
submission asked for one: the index then only checks two attributes per assignment.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from domain.cause import Cause
from domain.policies.retry import deadline

if TYPE_CHECKING:
    from domain.hive import Hive
    from runtime.live import Changes, LiveIndex

log = logging.getLogger(__name__)

TypeTimeout = Callable[[str], float | None]  # a task type's timeout in force (its policy's)
HELD = frozenset({"assigned", "running"})


class Attempt(Protocol):
    """What a deadline needs of a live task."""

    task_id: UUID
    type: str
    state: str
    fencing_token: int
    began: datetime | None
    timeout_s: float | None


# An entry: (deadline, tie-break, task id, its fencing token, its attempt's start, generation)
Entry = tuple[datetime, int, UUID, int, datetime, int]


class Deadlines:
    """The deadlines of held attempts, soonest first: a heap whose entries go stale when an
    attempt ends, starts (its deadline moves) or the policies change (a new generation).
    Guarded by its live index's lock."""

    def __init__(self) -> None:
        self.of_type: TypeTimeout | None = None  # None: no policy has a timeout
        self.heap: list[Entry] = []
        self.generation = 0
        self._order = itertools.count()

    def watch(self, task: Attempt) -> bool:
        """Keep the attempt's deadline, if it has one; True when it is now the soonest."""
        if task.began is None or (task.timeout_s is None and self.of_type is None):
            return False
        due = deadline(
            task.began, self.of_type(task.type) if self.of_type else None, task.timeout_s
        )
        if due is None:
            return False
        entry = (due, next(self._order), task.task_id, task.fencing_token, task.began)
        heapq.heappush(self.heap, (*entry, self.generation))
        return self.heap[0][1] == entry[1]

    def renew(self, of_type: TypeTimeout | None, held: Sequence[Attempt]) -> None:
        """The policies changed: every held attempt's deadline anew."""
        self.of_type, self.heap = of_type, []
        self.generation += 1
        for task in held:
            self.watch(task)

    def overdue(self, now: datetime, tasks: Mapping[UUID, Attempt]) -> list[UUID]:
        """The attempts past their deadline at ``now`` (taken out of the heap)."""
        heap, out = self.heap, []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._current(entry, tasks):
                out.append(entry[2])
        return out

    def soonest(self, tasks: Mapping[UUID, Attempt]) -> datetime | None:
        heap = self.heap
        while heap and not self._current(heap[0], tasks):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _current(self, entry: Entry, tasks: Mapping[UUID, Attempt]) -> bool:
        _, _, task_id, token, began, generation = entry
        task = tasks.get(task_id)
        return (
            generation == self.generation
            and task is not None
            and task.state in HELD
            and task.fencing_token == token
            and task.began == began
        )


class AttemptTimeouts:
    """The control loop: ends the attempts past their deadline, one save per round."""

    name = "timeouts"

    def __init__(self, hive: Hive, index: LiveIndex) -> None:
        self.hive = hive
        self.index = index
        self.wake = threading.Event()
        self._rounds = itertools.count(1)
        index.listeners.append(self._heard)

    def _heard(self, changes: Changes) -> None:
        if changes.deadline:  # a deadline sooner than the one the loop waits for
            self.wake.set()

    def configure(self, of_type: TypeTimeout | None) -> None:
        """The policies in force: each type's timeout (None: no policy has one)."""
        self.index.renew_deadlines(of_type)
        self.wake.set()

    def run_once(self) -> int:
        """One round; returns how many attempts it ended."""
        self.wake.clear()
        overdue = self.index.overdue(self.index.clock())
        if not overdue:
            return 0
        cause = Cause.engine(self.name, f"round-{next(self._rounds)}")
        committed = self.hive.tasks.time_out(overdue, cause)
        ended = len(committed.recorded)
        if ended:
            log.warning(
                "attempts ran past their timeout",
                extra={"action": "attempts_timed_out", "tasks": ended},
            )
        return ended

    def wait_hint(self) -> float | None:
        """Seconds until the soonest deadline (None: no held attempt has one)."""
        soonest = self.index.next_deadline()
        return None if soonest is None else (soonest - self.index.clock()).total_seconds()
