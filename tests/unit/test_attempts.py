"""A task's attempts from its events (domain/attempts.py): given what the aggregate
recorded, the attempts it shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.attempts import Attempt, AttemptOutcome, attempts
from domain.cause import Cause
from domain.errors import HiveError
from domain.policies.retry import RetryPolicy
from domain.tasks import Task, TaskState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WHO = Cause("alice", "r")
BOT, OTHER, NOBODY = UUID(int=1), UUID(int=2), UUID(int=0)
THREE = RetryPolicy(max_attempts=3, jitter=0.0)


class Story:
    """A task driven through its commands on a clock that moves one second per step."""

    def __init__(self) -> None:
        self.now = T0
        self.task = Task.submit(
            task_id=uuid4(),
            type="t",
            priority=5,
            capabilities=None,
            payload="{}",
            idempotency_key=None,
            cause=WHO,
            at=self.now,
        )
        self.events: list[Any] = []

    def recorded(self) -> list[Any]:
        """Every event the task recorded so far, in order."""
        self.events.extend(self.task.collect_events())
        return self.events

    def at(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def holder(self) -> UUID:
        return self.task.bot_id or NOBODY  # a report from nobody: refused

    def assign(self, bot: UUID = BOT) -> Story:
        self.task.assign(bot, {}, WHO, self.at())
        return self

    def start(self) -> Story:
        self.task.start(self.holder(), self.task.fencing_token, WHO, self.at())
        return self

    def succeed(self, ran_s: float | None = None) -> Story:
        t = self.task
        t.succeed(self.holder(), t.fencing_token, "{}", WHO, self.at(), ran_s)
        return self

    def fail(self, retryable: bool = True, kind: str | None = "boom", **kw: Any) -> Story:
        t = self.task
        t.fail(
            self.holder(),
            t.fencing_token,
            "it broke",
            WHO,
            self.at(),
            error_kind=kind,
            retryable=retryable,
            policy=THREE,
            **kw,
        )
        return self

    def lose(self) -> Story:
        self.task.expire_lease(self.holder(), "bot lost", WHO, self.at(), THREE)
        return self

    def cancel(self) -> Story:
        self.task.cancel("no longer wanted", WHO, self.at())
        return self

    def redrive(self) -> Story:
        self.task.redrive("try again", WHO, self.at())
        return self

    def wait_out_backoff(self) -> Story:
        self.now = max(self.now, self.task.not_before or self.now)
        return self

    def attempts(self) -> list[Attempt]:
        return attempts(self.recorded())


def brief(found: list[Attempt]) -> list[tuple[int, int, str]]:
    return [(a.series, a.attempt, str(a.outcome)) for a in found]


def test_a_task_never_assigned_has_no_attempts() -> None:
    assert Story().attempts() == []


def test_one_attempt_that_succeeded_runs_from_its_start_to_its_end() -> None:
    s = Story().assign().start().succeed()
    [a] = s.attempts()
    assert (a.series, a.attempt, a.bot_id, a.outcome) == (1, 1, BOT, AttemptOutcome.SUCCEEDED)
    assert a.started_at == T0 + timedelta(seconds=2) and a.ended_at == T0 + timedelta(seconds=3)
    assert a.error is None


def test_a_held_attempt_is_running_from_its_assignment_until_it_starts() -> None:
    s = Story().assign()
    [a] = s.attempts()
    assert a.outcome is AttemptOutcome.RUNNING and a.ended_at is None
    assert a.started_at == T0 + timedelta(seconds=1)  # the assignment's time
    s.start()
    [a] = s.attempts()
    assert a.outcome is AttemptOutcome.RUNNING and a.started_at == T0 + timedelta(seconds=2)


def test_a_fast_task_s_start_is_implied_by_how_long_it_ran() -> None:
    s = Story().assign()
    s.at()
    s.at()  # assigned 3 s before the end
    s.succeed(ran_s=0.5)
    [a] = s.attempts()
    assert a.ended_at is not None and a.started_at == a.ended_at - timedelta(seconds=0.5)


def test_failures_retried_then_a_success_are_attempts_numbered_in_order() -> None:
    s = Story().assign().start().fail().wait_out_backoff()
    s.assign(OTHER).start().fail(kind="io").wait_out_backoff()
    s.assign().start().succeed()
    found = s.attempts()
    assert brief(found) == [(1, 1, "failed"), (1, 2, "failed"), (1, 3, "succeeded")]
    assert [a.bot_id for a in found] == [BOT, OTHER, BOT]
    assert [a.error_kind for a in found] == ["boom", "io", None]
    assert found[0].error == "it broke"


def test_the_last_retryable_failure_is_dead_lettered_and_shown_as_failed() -> None:
    s = Story()
    for _ in range(3):
        s.assign().start().fail().wait_out_backoff()
    assert s.task.state is TaskState.DEAD
    assert brief(s.attempts()) == [(1, n, "failed") for n in (1, 2, 3)]


def test_a_failure_that_is_not_retryable_is_the_last_attempt() -> None:
    s = Story().assign().start().fail(retryable=False, kind="bad-input")
    [a] = s.attempts()
    assert (a.outcome, a.error_kind) == (AttemptOutcome.FAILED, "bad-input")


def test_a_lease_lost_before_the_start_is_no_attempt() -> None:
    s = Story().assign().lose()
    assert s.task.state is TaskState.PENDING and s.attempts() == []
    s.assign(OTHER).start().succeed()
    assert brief(s.attempts()) == [(1, 1, "succeeded")]


def test_a_bot_lost_after_the_start_ends_the_attempt_as_lost() -> None:
    s = Story().assign().start().lose().wait_out_backoff()
    s.assign(OTHER)
    found = s.attempts()
    assert brief(found) == [(1, 1, "lost"), (1, 2, "running")]
    assert found[0].error_kind == "lost"


def test_an_attempt_past_its_timeout_is_timed_out() -> None:
    s = Story().assign().start()
    policy = RetryPolicy(max_attempts=3, timeout_s=10)
    s.now += timedelta(seconds=30)
    assert s.task.time_out(WHO, s.now, policy)
    [a] = s.attempts()
    assert (a.outcome, a.error_kind, a.ended_at) == (AttemptOutcome.TIMED_OUT, "timeout", s.now)


def test_a_cancel_ends_a_held_attempt_but_not_a_task_waiting_out_its_backoff() -> None:
    s = Story().assign().start().cancel()
    [a] = s.attempts()
    assert (a.outcome, a.error) == (AttemptOutcome.CANCELLED, "no longer wanted")
    waiting = Story().assign().start().fail().cancel()
    assert brief(waiting.attempts()) == [(1, 1, "failed")]


def test_a_redrive_starts_a_new_series_and_keeps_the_old_attempts() -> None:
    s = Story()
    for _ in range(3):
        s.assign().start().fail().wait_out_backoff()
    s.redrive().assign().start().succeed()
    assert brief(s.attempts()) == [
        (1, 1, "failed"),
        (1, 2, "failed"),
        (1, 3, "failed"),
        (2, 1, "succeeded"),
    ]


def test_an_old_log_s_bot_lost_after_the_start_is_shown_lost() -> None:
    """Before retries a lost bot sent a started task back to pending (``LeaseExpired``)."""
    s = Story().assign().start()
    s.task._record(Task.LeaseExpired, WHO, s.at(), bot_id=BOT, reason="bot lost")
    s.assign(OTHER).start().succeed()
    assert brief(s.attempts()) == [(1, 1, "lost"), (1, 1, "succeeded")]


STEPS = st.lists(
    st.sampled_from(
        [
            "assign",
            "start",
            "succeed",
            "fail",
            "fail_for_good",
            "lose",
            "cancel",
            "redrive",
            "time_out",
            "wait",
        ]
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_attempts_match_what_the_task_counts(steps: list[str]) -> None:
    s = Story()
    for step in steps:
        try:
            match step:
                case "assign":
                    s.assign()
                case "start":
                    s.start()
                case "succeed":
                    s.succeed()
                case "fail":
                    s.fail()
                case "fail_for_good":
                    s.fail(retryable=False)
                case "lose":
                    s.lose()
                case "cancel":
                    s.cancel()
                case "redrive":
                    s.redrive()
                case "time_out":
                    s.now += timedelta(seconds=60)
                    s.task.time_out(WHO, s.now, RetryPolicy(max_attempts=3, timeout_s=5))
                case "wait":
                    s.wait_out_backoff()
        except HiveError:
            continue  # a command the task refuses in its state records nothing
    events = s.recorded()
    found = attempts(events)
    ends = (Task.Succeeded, Task.Failed, Task.RetryScheduled, Task.DeadLettered)
    ended = sum(isinstance(e, ends) for e in events)
    assert sum(a.outcome not in ("running", "cancelled") for a in found) == ended
    running = [a for a in found if a.outcome is AttemptOutcome.RUNNING]
    assert len(running) == (1 if s.task.state.is_held else 0)
    if running:
        assert running[0] is found[-1]
        assert (running[0].series, running[0].attempt) == (s.task.series, s.task.attempt)
    keys = [(a.series, a.attempt) for a in found]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # in order, none twice
    for a in found:
        assert a.ended_at is None or a.started_at <= a.ended_at
