"""A task's attempts as its commands decide them: a failure retried after its backoff,
dead-lettered after the last attempt, failed for good when not retryable; a bot lost after
the start ends the attempt, one before it does not; a timeout ends it; a re-drive starts a
new series with the history kept; a cancel while waiting out a backoff is final."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotYourTask
from domain.hive import Hive, Report, TaskSpec
from domain.policies.retry import RetryLimits, RetryPolicy
from domain.policies.routing import Assignment
from domain.tasks import Outcome, Task, TaskState
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")
POLICY = RetryPolicy(max_attempts=3, initial_backoff_s=2.0, jitter=0.0)


@pytest.fixture
def policed(hive: Hive) -> Hive:
    hive.tasks.policies = lambda task_type: (
        RetryPolicy(max_attempts=1) if task_type == "once" else POLICY
    )
    return hive


def bot(hive: Hive, name: str = "b") -> tuple[UUID, Cause]:
    registered, _, _ = hive.fleet.register(
        name=name, capabilities=["code", "once"], max_concurrency=4, version_label="v1", cause=ALICE
    )
    return registered.id, Cause(f"bot:{registered.id}", "r")


def submit(hive: Hive, task_type: str = "code", retry: RetryLimits | None = None) -> UUID:
    return hive.tasks.submit([TaskSpec(task_type, retry=retry)], ALICE).items[0].task.id


def run(hive: Hive, task_id: UUID, bot_id: UUID, me: Cause) -> int:
    """Assign and start the task on the bot; returns the fencing token."""
    hive.tasks.assign([Assignment(task_id, bot_id, {})], ENGINE)
    token = hive.get(Task, task_id).fencing_token
    hive.tasks.start(bot_id, [Report(task_id, token)], me)
    return token


def fail(hive: Hive, task_id: UUID, bot_id: UUID, me: Cause, **kind: object) -> list[object]:
    token = run(hive, task_id, bot_id, me)
    done = hive.tasks.finish(bot_id, [Report(task_id, token, error="boom", **kind)], me)  # type: ignore[arg-type]
    return [e for _, e in done.recorded]


def test_a_failed_attempt_is_retried_after_its_backoff(policed: Hive, clock: FakeClock) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed)
    [event] = fail(policed, task_id, bot_id, me, error_kind="flaky")
    assert isinstance(event, Task.RetryScheduled)
    assert (event.attempt, event.outcome, event.error_kind, event.delay_s) == (
        1,
        "failed",
        "flaky",
        2.0,
    )
    task = policed.get(Task, task_id)
    assert (task.state, task.attempt, task.bot_id) == (TaskState.PENDING, 2, None)
    assert task.not_before == event.not_before == clock() + timedelta(seconds=2)


def test_the_backoff_doubles_and_the_last_attempt_is_dead_lettered(policed: Hive) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed)
    first, second, third = (fail(policed, task_id, bot_id, me)[0] for _ in range(3))
    assert isinstance(first, Task.RetryScheduled) and first.delay_s == 2.0
    assert isinstance(second, Task.RetryScheduled) and second.delay_s == 4.0
    assert isinstance(third, Task.DeadLettered)
    assert (third.attempt, third.reason) == (3, "attempts exhausted: 3 of 3")
    task = policed.get(Task, task_id)
    assert (task.state, task.dead_reason, task.error) == (
        TaskState.DEAD,
        "attempts exhausted: 3 of 3",
        "boom",
    )


def test_a_failure_that_is_not_retryable_fails_for_good(policed: Hive) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed)
    [event] = fail(policed, task_id, bot_id, me, error_kind="bad-input", retryable=False)
    assert isinstance(event, Task.Failed) and event.error_kind == "bad-input"
    assert policed.get(Task, task_id).state is TaskState.FAILED


def test_a_repeated_failure_report_changes_nothing_and_a_late_one_is_refused(
    policed: Hive,
) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed)
    token = run(policed, task_id, bot_id, me)
    report = Report(task_id, token, error="boom")
    policed.tasks.finish(bot_id, [report], me)
    assert policed.tasks.finish(bot_id, [report], me).recorded == []  # the same report again
    with pytest.raises(NotYourTask):  # a success after its failure: no longer its task
        policed.tasks.finish(bot_id, [Report(task_id, token, result="{}")], me)


def test_a_bot_lost_after_the_start_ends_the_attempt_and_before_it_does_not(
    policed: Hive,
) -> None:
    bot_id, me = bot(policed)
    before, after = submit(policed), submit(policed)
    policed.tasks.assign([Assignment(before, bot_id, {})], ENGINE)
    run(policed, after, bot_id, me)
    released = policed.tasks.release(bot_id, [before, after], "lease expired", ENGINE)
    events = {e.originator_id: e for _, e in released.recorded}
    assert isinstance(events[before], Task.LeaseExpired)
    lost = events[after]
    assert isinstance(lost, Task.RetryScheduled)
    assert (lost.outcome, lost.error_kind, lost.attempt) == (Outcome.LOST, "lost", 1)
    assert policed.get(Task, before).attempt == 1 and policed.get(Task, after).attempt == 2


def test_a_task_that_keeps_killing_its_bots_is_dead_lettered(policed: Hive) -> None:
    task_id = submit(policed)
    for n in range(3):
        bot_id, me = bot(policed, f"b{n}")
        run(policed, task_id, bot_id, me)
        policed.tasks.release(bot_id, [task_id], "lease expired", ENGINE)
    task = policed.get(Task, task_id)
    assert (task.state, task.dead_reason) == (TaskState.DEAD, "attempts exhausted: 3 of 3")


def test_an_attempt_past_its_timeout_is_ended_and_its_late_report_refused(
    policed: Hive, clock: FakeClock
) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed, retry=RetryLimits(timeout_s=10))
    token = run(policed, task_id, bot_id, me)
    clock.advance(9.0)
    assert policed.tasks.time_out([task_id], ENGINE).recorded == []  # not yet
    clock.advance(1.0)
    [(_, event)] = policed.tasks.time_out([task_id], ENGINE).recorded
    assert isinstance(event, Task.RetryScheduled)
    assert (event.outcome, event.error_kind) == (Outcome.TIMED_OUT, "timeout")
    with pytest.raises(NotYourTask):
        policed.tasks.finish(bot_id, [Report(task_id, token, result="{}")], me)


def test_a_submission_may_narrow_its_policy_but_never_widen_it(policed: Hive) -> None:
    bot_id, me = bot(policed)
    once = submit(policed, retry=RetryLimits(max_attempts=1))
    [event] = fail(policed, once, bot_id, me)
    assert isinstance(event, Task.DeadLettered) and event.reason == "attempts exhausted: 1 of 1"
    with pytest.raises(InvalidInput, match="at most 3"):
        submit(policed, retry=RetryLimits(max_attempts=4))
    with pytest.raises(InvalidInput, match="max_attempts"):
        submit(policed, retry=RetryLimits(max_attempts=0))


def test_a_redrive_starts_a_new_series_and_keeps_the_history(policed: Hive) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed, "once")
    fail(policed, task_id, bot_id, me)
    assert policed.get(Task, task_id).state is TaskState.DEAD
    policed.tasks.redrive([task_id], "fixed the bot", ALICE)
    task = policed.get(Task, task_id)
    assert (task.state, task.series, task.attempt, task.error) == (
        TaskState.PENDING,
        2,
        1,
        None,
    )
    [event] = fail(policed, task_id, bot_id, me)
    assert isinstance(event, Task.DeadLettered) and event.attempt == 1
    kinds = [type(e).__name__ for e in policed.history(task_id)]
    assert kinds.count("DeadLettered") == 2 and "Redriven" in kinds
    with pytest.raises(InvalidTransition):  # a pending task is not re-driven
        policed.tasks.redrive([submit(policed)], "no", ALICE)


def test_a_task_waiting_out_its_backoff_can_be_cancelled_and_never_retries(
    policed: Hive,
) -> None:
    bot_id, me = bot(policed)
    task_id = submit(policed)
    fail(policed, task_id, bot_id, me)
    policed.tasks.cancel(task_id, "not needed", ALICE)
    assert policed.get(Task, task_id).state is TaskState.CANCELLED
    assert policed.tasks.assign([Assignment(task_id, bot_id, {})], ENGINE).recorded == []


def test_a_bulk_redrive_passes_over_what_is_no_longer_redrivable(policed: Hive) -> None:
    bot_id, me = bot(policed)
    dead, pending = submit(policed, "once"), submit(policed)
    fail(policed, dead, bot_id, me)
    done = policed.tasks.redrive_found([dead, pending], "bulk", ALICE)
    assert [e.originator_id for _, e in done.recorded] == [dead]


def test_a_lost_bot_s_started_tasks_are_decided_by_their_policy(policed: Hive) -> None:
    """The reaper loses a bot through the fleet: the task's policy decides there too."""
    bot_id, me = bot(policed)
    task_id = submit(policed)
    run(policed, task_id, bot_id, me)
    policed.fleet.lose(bot_id, [task_id], "lease expired", ENGINE)
    task = policed.get(Task, task_id)
    assert (task.state, task.attempt) == (TaskState.PENDING, 2)
