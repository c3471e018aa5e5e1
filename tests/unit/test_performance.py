"""What the hive learns of a bot: the weighted record (bounds, convergence) and the runs fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.cause import Cause
from domain.policies.performance import Performance, observe
from domain.policies.runs import Outcome, Run, follow
from domain.tasks import Task

alphas = st.floats(min_value=1e-3, max_value=1.0)
durations = st.none() | st.floats(min_value=0.0, max_value=1e5)
outcomes = st.lists(st.tuples(st.booleans(), durations), max_size=60)

BOT = UUID(int=7)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
WHO = Cause("bot:7", "r")


def learned(seq: list[tuple[bool, float | None]], alpha: float) -> Performance | None:
    record = None
    for ok, duration in seq:
        record = observe(record, ok, duration, alpha)
    return record


@given(outcomes, alphas)
@example([(False, 1.0), (False, 2.4145664924129054e-290)], 1.0)  # rounding once left [lo, hi]
def test_success_stays_within_0_and_1_and_samples_count_every_outcome(
    seq: list[tuple[bool, float | None]], alpha: float
) -> None:
    record = learned(seq, alpha)
    if not seq:
        assert record is None
        return
    assert record is not None
    assert 0.0 <= record.success <= 1.0
    assert record.samples == len(seq)
    timed = [d for _, d in seq if d is not None]
    if not timed:
        assert record.duration_s is None
    else:
        assert record.duration_s is not None
        assert min(timed) * (1 - 1e-9) <= record.duration_s <= max(timed) * (1 + 1e-9)


@given(outcomes, alphas, st.booleans(), st.integers(1, 60))
def test_repeated_outcomes_converge_geometrically(
    history: list[tuple[bool, float | None]], alpha: float, ok: bool, n: int
) -> None:
    before = learned(history, alpha)
    record = before
    for _ in range(n):
        record = observe(record, ok, 2.0, alpha)
    assert record is not None
    target = 1.0 if ok else 0.0
    if before is None:
        assert record.success == target  # the first outcome seeds the record
        return
    bound = (1 - alpha) ** n * abs(before.success - target)
    assert abs(record.success - target) <= bound + 1e-9
    assert record.duration_s is not None
    start = 2.0 if before.duration_s is None else before.duration_s
    assert abs(record.duration_s - 2.0) <= (1 - alpha) ** n * abs(start - 2.0) + 1e-9


@given(outcomes, alphas)
def test_a_success_never_lowers_the_rate_and_a_failure_never_raises_it(
    seq: list[tuple[bool, float | None]], alpha: float
) -> None:
    record = learned(seq, alpha)
    if record is None:
        return
    assert observe(record, True, None, alpha).success >= record.success
    assert observe(record, False, None, alpha).success <= record.success


def test_one_failure_among_successes_weighs_alpha() -> None:
    record = learned([(True, 1.0)] * 10 + [(False, 3.0)], 0.2)
    assert record == Performance(
        success=pytest.approx(0.8), duration_s=pytest.approx(1.4), samples=11
    )


# -- the runs fold ------------------------------------------------------------------------


def event(kind: type, version: int, at: datetime, **fields: object) -> object:
    return kind(
        originator_id=UUID(int=1),
        originator_version=version,
        timestamp=at,
        actor=WHO.actor,
        request_id=WHO.request_id,
        **fields,
    )


def submitted() -> object:
    return Task.Submitted(
        originator_topic="domain.tasks:Task",
        originator_id=UUID(int=1),
        originator_version=1,
        timestamp=T0,
        actor="alice",
        request_id="r",
        type="code",
        priority=5,
        capabilities=["code"],
        payload="{}",
        idempotency_key=None,
        not_before=None,
        schedule_id=None,
        retry=None,
    )


def run_through(*events: object) -> tuple[Run | None, list[Outcome]]:
    run: Run | None = None
    seen = []
    for e in events:
        run, outcome = follow(run, e)
        if outcome is not None:
            seen.append(outcome)
    return run, seen


def test_a_run_is_timed_from_its_start_to_its_end() -> None:
    run, seen = run_through(
        submitted(),
        event(Task.Assigned, 2, T0 + timedelta(seconds=1), bot_id=BOT, fencing_token=1, why={}),
        event(Task.Started, 3, T0 + timedelta(seconds=2), fencing_token=1),
        event(Task.Succeeded, 4, T0 + timedelta(seconds=5.5), fencing_token=1, result="1"),
    )
    assert run is None
    assert seen == [Outcome(BOT, "code", True, 3.5, T0 + timedelta(seconds=5.5))]


def test_a_lease_lost_after_the_start_is_an_untimed_failure_and_the_task_waits_again() -> None:
    run, seen = run_through(
        submitted(),
        event(Task.Assigned, 2, T0, bot_id=BOT, fencing_token=1, why={}),
        event(Task.Started, 3, T0, fencing_token=1),
        event(Task.LeaseExpired, 4, T0 + timedelta(seconds=9), bot_id=BOT, reason="silent"),
    )
    assert run == Run("code")
    assert seen == [Outcome(BOT, "code", False, None, T0 + timedelta(seconds=9))]


def test_a_lease_lost_before_the_start_or_a_cancellation_says_nothing_of_the_bot() -> None:
    run, seen = run_through(
        submitted(),
        event(Task.Assigned, 2, T0, bot_id=BOT, fencing_token=1, why={}),
        event(Task.LeaseExpired, 3, T0, bot_id=BOT, reason="silent"),
        event(Task.Assigned, 4, T0, bot_id=BOT, fencing_token=2, why={}),
        event(Task.Started, 5, T0, fencing_token=2),
        event(Task.Cancelled, 6, T0, reason="not needed"),
    )
    assert run is None and seen == []


def test_a_failure_is_untimed_and_a_clock_that_went_back_counts_as_no_time() -> None:
    ran = (
        submitted(),
        event(Task.Assigned, 2, T0, bot_id=BOT, fencing_token=1, why={}),
        event(Task.Started, 3, T0, fencing_token=1),
    )
    _, failed = run_through(*ran, event(Task.Failed, 4, T0, fencing_token=1, error="boom"))
    back = T0 - timedelta(seconds=1)
    _, done = run_through(*ran, event(Task.Succeeded, 4, back, fencing_token=1, result="1"))
    assert [(o.succeeded, o.duration_s) for o in failed + done] == [(False, None), (True, 0.0)]


def ended(kind: type, version: int, at: datetime, outcome: str, **fields: object) -> object:
    """An attempt of ``BOT`` (token 1) that ended without success, as the log records it."""
    common = {"bot_id": BOT, "fencing_token": 1, "outcome": outcome, "error": "boom"}
    return event(kind, version, at, **common, error_kind=None, ran_s=None, attempt=1, **fields)


@pytest.mark.parametrize("outcome", ["failed", "lost", "timed-out"])
def test_an_attempt_that_ends_in_a_retry_or_a_dead_letter_is_an_untimed_failure_of_its_bot(
    outcome: str,
) -> None:
    assigned = event(Task.Assigned, 2, T0, bot_id=BOT, fencing_token=1, why={})
    at = T0 + timedelta(seconds=4)
    retry = ended(
        Task.RetryScheduled, 3, at, outcome, delay_s=1.0, not_before=at + timedelta(seconds=1)
    )
    run, seen = run_through(submitted(), assigned, retry)
    assert run == Run("code")  # waits for its next attempt, whoever takes it
    assert seen == [Outcome(BOT, "code", False, None, at)]
    dead = ended(Task.DeadLettered, 3, at, outcome, reason="attempts exhausted")
    run, seen = run_through(submitted(), assigned, dead)
    assert run is None
    assert seen == [Outcome(BOT, "code", False, None, at)]


def test_a_redrive_says_nothing_and_the_new_series_is_learned_from() -> None:
    other = UUID(int=8)
    at = T0 + timedelta(seconds=10)
    run, seen = run_through(
        submitted(),
        event(Task.Assigned, 2, T0, bot_id=BOT, fencing_token=1, why={}),
        ended(Task.DeadLettered, 3, T0, "lost", reason="attempts exhausted"),
        event(
            Task.Redriven,
            4,
            T0,
            reason="fixed",
            series=2,
            type="code",
            priority=5,
            capabilities=["code"],
            retry=None,
        ),
        event(Task.Assigned, 5, at, bot_id=other, fencing_token=2, why={}),
        event(Task.Started, 6, at, fencing_token=2),
        event(Task.Succeeded, 7, at + timedelta(seconds=2), fencing_token=2, result="1"),
    )
    assert run is None
    assert seen == [
        Outcome(BOT, "code", False, None, T0),
        Outcome(other, "code", True, 2.0, at + timedelta(seconds=2)),
    ]
