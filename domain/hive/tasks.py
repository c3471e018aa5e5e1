"""The tasks room: submit (in bulk, idempotent by key), assign (a round's assignments
sharing one record of what explains them), start, finish, cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.cause import Cause
from domain.errors import HiveError, InvalidInput
from domain.hive.kernel import Committed, Kernel, every
from domain.policies.explanation import RoundInputs
from domain.policies.retry import RetryLimits, RetryPolicy
from domain.policies.routing import Assignment, PendingTask
from domain.rounds import DispatchRound
from domain.tasks import NO_RETRY, REDRIVABLE, Task, TaskState
from domain.unroutable import UnroutableTasks

IDEMPOTENCY_NAMESPACE = UUID("5d1c3f0e-7a0b-4d3e-9a61-6b1f1f6c0a11")

T = TypeVar("T")


@dataclass(frozen=True)
class TaskSpec:
    type: str
    priority: int = 5
    capabilities: list[str] | None = None
    payload: str = "{}"
    idempotency_key: str | None = None
    not_before: datetime | None = None  # not offered to a bot before then
    schedule_id: UUID | None = None  # set by the scheduler only: the schedule that fired it
    retry: RetryLimits | None = None  # narrows its type's retry policy


@dataclass(frozen=True)
class Submission:
    task: Task
    duplicate: bool


@dataclass(frozen=True)
class Report:
    """A bot's word on one task it holds: started, or finished with a result or an error."""

    task_id: UUID
    fencing_token: int
    result: str | None = None
    error: str | None = None
    ran_s: float | None = None  # a finish whose start was never reported: how long it ran
    error_kind: str | None = None  # a failure's kind (a short name), for the retry policy
    retryable: bool = True  # False: the failure is the task's answer, never retried


@dataclass(frozen=True)
class Placement:
    """Where new tasks go at once, and who decided it (the dispatcher)."""

    assignments: Sequence[Assignment]
    cause: Cause


Place = Callable[[Sequence[PendingTask], datetime], Placement | None]


class Placer(Protocol):
    """Who may assign new tasks in their own submission: the dispatcher of the process
    that leads it, while it is idle (``runtime/dispatcher.py``)."""

    def hand_off(self) -> AbstractContextManager[Place | None]: ...


@contextmanager
def _nobody() -> Iterator[Place | None]:
    yield None


RetryPolicies = Callable[[str], RetryPolicy]  # a task type's policy in force


def no_retries(_: str) -> RetryPolicy:
    return NO_RETRY


class TaskCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.placer: Placer | None = None
        self.policies: RetryPolicies = no_retries  # the config's, once the node is built

    def submit(self, specs: Sequence[TaskSpec], cause: Cause) -> Committed[Submission]:
        """New tasks, all or none. A task with an idempotency key gets an id made from the
        key (and the submitter), so a repeat finds the original: it is returned, marked
        as a duplicate, and nothing is written for it."""
        ids = [self._task_id(spec, cause) for spec in specs]
        keyed = [i for i, s in zip(ids, specs, strict=True) if s.idempotency_key is not None]
        existing: dict[UUID, Task] = {}
        fresh: dict[UUID, Task] = {}

        def submit(found: dict[UUID, Any], at: datetime) -> list[Aggregate]:
            existing.clear()
            existing.update({i: t for i, t in found.items() if isinstance(t, Task)})
            fresh.clear()  # made anew each attempt: a failed save has consumed the last ones
            for index, (task_id, s) in enumerate(zip(ids, specs, strict=True)):
                task = _at_index(
                    index,
                    len(specs),
                    partial(
                        Task.submit,
                        task_id=task_id,
                        type=s.type,
                        priority=s.priority,
                        capabilities=s.capabilities,
                        payload=s.payload,
                        idempotency_key=s.idempotency_key,
                        cause=cause,
                        at=at,
                        not_before=s.not_before,
                        schedule_id=s.schedule_id,
                        retry=self._limits(s),
                    ),
                )  # every item is checked, repeats of a key too: a bad batch is refused whole
                if task_id not in fresh and task_id not in existing:
                    fresh[task_id] = task
            records = [] if place is None else _hand_off(fresh, place, at, self.kernel.new_id)
            return [*records, *fresh.values()]

        placer = self.placer
        with placer.hand_off() if placer is not None else _nobody() as place:
            committed = self.kernel.execute(keyed, submit, fresh=True)  # a key's: the log's
        seen: set[UUID] = set()
        out = []
        for task_id in ids:
            task = existing.get(task_id) or fresh[task_id]
            out.append(Submission(task, duplicate=task_id in existing or task_id in seen))
            seen.add(task_id)
        return Committed.of(out, committed.recorded)

    def assign(self, assignments: Sequence[Assignment], cause: Cause) -> Committed[Task]:
        """Record the dispatcher's choices; tasks no longer pending are left alone.

        The tasks of one routing round that are still pending, when there are two or more,
        share one ``DispatchRound`` record, saved with them and ahead of them: each
        assignment names it and carries only its own choice. A single one carries its
        complete explanation and names no round (a record would cost more than it saves).
        Every attempt makes its records anew (one decided again from the log too)."""
        chosen = {a.task_id: a for a in assignments}
        ids = list(chosen)

        def assign(found: dict[UUID, Any], at: datetime) -> list[Aggregate]:
            pending = [t for t in every(Task, ids, found) if t.state is TaskState.PENDING]
            records = _record_assignments(pending, chosen, cause, at, self.kernel.new_id)
            return [*records, *pending]

        committed = self.kernel.execute(ids, assign)
        tasks = [t for t in committed.items if isinstance(t, Task)]
        return Committed.of(tasks, committed.recorded)

    def mark_unroutable(
        self,
        capabilities: Iterable[str],
        task_ids: Sequence[UUID],
        reason: str,
        missing: list[str],
        cause: Cause,
    ) -> Committed[UnroutableTasks]:
        """Say once, for all of ``task_ids`` (pending tasks that each require exactly
        ``capabilities``), that no bot could do them: one record, whatever their number.
        Those no longer pending where it lands in the log are left alone by its readers."""
        required, named = list(capabilities), list(task_ids)  # the kernel may decide again

        def flag(_: dict[UUID, Any], at: datetime) -> list[UnroutableTasks]:
            return [
                UnroutableTasks.flag(
                    record_id=self.kernel.new_id(),
                    capabilities=required,
                    missing=missing,
                    reason=reason,
                    task_ids=named,
                    cause=cause,
                    at=at,
                )
            ]

        return self.kernel.execute([], flag, fresh=True)

    def start(self, bot_id: UUID, reports: Sequence[Report], cause: Cause) -> Committed[Task]:
        tokens = {r.task_id: r.fencing_token for r in reports}
        return self.kernel.change(
            Task, list(tokens), lambda t, at: t.start(bot_id, tokens[t.id], cause, at)
        )

    def finish(self, bot_id: UUID, reports: Sequence[Report], cause: Cause) -> Committed[Task]:
        by_id = {r.task_id: r for r in reports}

        def finish(task: Task, at: datetime) -> None:
            r = by_id[task.id]
            if r.error is not None:
                task.fail(
                    bot_id,
                    r.fencing_token,
                    r.error,
                    cause,
                    at,
                    r.ran_s,
                    error_kind=r.error_kind,
                    retryable=r.retryable,
                    policy=self.policies(task.type),
                )
            else:
                task.succeed(bot_id, r.fencing_token, r.result or "null", cause, at, r.ran_s)

        return self.kernel.change(Task, list(by_id), finish)

    def cancel(self, task_id: UUID, reason: str, cause: Cause) -> Committed[Task]:
        return self.kernel.change(Task, [task_id], lambda t, at: t.cancel(reason, cause, at))

    def release(
        self, bot_id: UUID, task_ids: Iterable[UUID], reason: str, cause: Cause
    ) -> Committed[Task]:
        """Take tasks back from a bot that is gone: those it had not started return to
        pending; for those it had, the attempt ended, and their policy decides."""
        return self.kernel.change(
            Task,
            list(task_ids),
            lambda t, at: t.expire_lease(bot_id, reason, cause, at, self.policies(t.type)),
        )

    def time_out(self, task_ids: Sequence[UUID], cause: Cause) -> Committed[Task]:
        """Fail the attempts of ``task_ids`` that have run past their timeout (the others
        are left alone: they finished, or their deadline moved, meanwhile)."""

        def time_out(task: Task, at: datetime) -> None:
            task.time_out(cause, at, self.policies(task.type))

        return self.kernel.change(Task, list(task_ids), time_out)

    def redrive(self, task_ids: Sequence[UUID], reason: str, cause: Cause) -> Committed[Task]:
        """A new series of attempts for each task: all must be failed, dead or cancelled.
        A task named twice is re-driven once."""
        ids = list(dict.fromkeys(task_ids))
        return self.kernel.change(Task, ids, lambda t, at: t.redrive(reason, cause, at))

    def redrive_found(self, task_ids: Sequence[UUID], reason: str, cause: Cause) -> Committed[Task]:
        """A bulk re-drive of what a filter found: the tasks no longer failed, dead or
        cancelled where the log stands (re-driven meanwhile, say) are passed over. A task
        named twice is re-driven once."""
        ids = list(dict.fromkeys(task_ids))

        def redrive(found: dict[UUID, Any], at: datetime) -> list[Aggregate]:
            tasks = [t for t in every(Task, ids, found) if t.state in REDRIVABLE]
            for task in tasks:
                task.redrive(reason, cause, at)
            return list(tasks)

        committed = self.kernel.execute(ids, redrive)
        return Committed.of([t for t in committed.items if isinstance(t, Task)], committed.recorded)

    def _limits(self, spec: TaskSpec) -> RetryLimits | None:
        """The submission's narrowing, refused when it would widen its type's policy."""
        if spec.retry is None:
            return None
        policy = self.policies(spec.type)
        if (spec.retry.max_attempts or 0) > policy.max_attempts:
            raise InvalidInput(
                f"retry.max_attempts may be at most {policy.max_attempts} for type "
                f"{spec.type!r} (its retry policy)"
            )
        if (
            spec.retry.timeout_s is not None
            and policy.timeout_s is not None
            and spec.retry.timeout_s > policy.timeout_s
        ):
            raise InvalidInput(
                f"retry.timeout_s may be at most {policy.timeout_s:g} for type "
                f"{spec.type!r} (its retry policy)"
            )
        return spec.retry

    def _task_id(self, spec: TaskSpec, cause: Cause) -> UUID:
        if spec.idempotency_key is None:
            return self.kernel.new_id()
        return uuid5(IDEMPOTENCY_NAMESPACE, f"{cause.actor}\n{spec.idempotency_key}")


def _hand_off(
    fresh: dict[UUID, Task], place: Place, at: datetime, new_id: Callable[[], UUID]
) -> list[DispatchRound]:
    """Assign the new tasks that are due now in their own submission, where ``place``
    puts them: one transaction, no wait for a dispatch round. Returns the round's record
    (when it assigns two tasks or more), to be saved ahead of them."""
    now = at.timestamp()
    due = [
        PendingTask(t.id, t.priority, i, frozenset(t.capabilities), t.type, now)
        for i, t in enumerate(fresh.values())
        if t.not_before is None or t.not_before <= at
    ]
    placement = place(due, at) if due else None
    if placement is None:
        return []
    chosen = {a.task_id: a for a in placement.assignments}
    tasks = [fresh[task_id] for task_id in chosen]
    return _record_assignments(tasks, chosen, placement.cause, at, new_id)


def _record_assignments(
    tasks: list[Task],
    chosen: dict[UUID, Assignment],
    cause: Cause,
    at: datetime,
    new_id: Callable[[], UUID],
) -> list[DispatchRound]:
    """Assign ``tasks`` (pending) as ``chosen`` says; returns the records of the routing
    rounds they share (to be saved ahead of them). The tasks of one round, when there are
    two or more, share one ``DispatchRound``: each assignment names it and carries only
    its own choice. A single one carries its complete explanation and names no round (a
    record would cost more than it saves)."""
    records: list[DispatchRound] = []
    for shared, group in _by_round(tasks, chosen).items():
        if shared is None or len(group) < 2:
            for task in group:
                a = chosen[task.id]
                task.assign(a.bot_id, a.why, cause, at)
            continue
        inputs, choices = shared.narrowed([chosen[t.id].choice for t in group])
        record = DispatchRound.record(round_id=new_id(), inputs=inputs, cause=cause, at=at)
        records.append(record)
        for task, choice in zip(group, choices, strict=True):
            task.assign(chosen[task.id].bot_id, choice, cause, at, round_id=record.id)
    return records


def _by_round(
    tasks: list[Task], chosen: dict[UUID, Assignment]
) -> dict[RoundInputs | None, list[Task]]:
    """The tasks by the routing round their assignment belongs to (None: made by hand)."""
    rounds: dict[RoundInputs | None, list[Task]] = {}
    for task in tasks:
        rounds.setdefault(chosen[task.id].shared, []).append(task)
    return rounds


def _at_index(index: int, total: int, make: Callable[[], T]) -> T:
    """Name the offending item when one of a batch breaks a rule."""
    try:
        return make()
    except HiveError as e:
        if total == 1:
            raise
        raise InvalidInput(f"item {index}: {e.message}", index=index, **e.context) from e
