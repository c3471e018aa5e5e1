"""The retry policy: bounded, monotonic before jitter, never past the maximum, attempts
capped; the decision the same every time it is made for the same attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.policies.retry import (
    MAX_ATTEMPTS,
    GiveUp,
    Retry,
    RetryLimits,
    RetryPolicy,
    backoff,
    decide_retry,
    jitter_fraction,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, MAX_ATTEMPTS),
    initial_backoff_s=st.floats(0, 3600),
    multiplier=st.floats(1, 10),
    max_backoff_s=st.floats(0, 7 * 24 * 3600),
    jitter=st.floats(0, 1),
    non_retryable=st.frozensets(st.sampled_from(["bad-input", "timeout", "lost"]), max_size=2),
).filter(lambda p: p.max_backoff_s >= p.initial_backoff_s)
draws = st.floats(0, 1, exclude_max=True)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(1, MAX_ATTEMPTS), draws)
def test_a_retry_waits_at_least_its_backoff_and_never_past_the_maximum(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    decision = decide_retry(
        policy, attempt=attempt, error_kind=None, retryable=True, now=NOW, draw=draw
    )
    if attempt >= policy.max_attempts:
        assert isinstance(decision, GiveUp) and decision.dead
        return
    assert isinstance(decision, Retry)
    base = backoff(policy, attempt)
    assert base - 1e-6 <= decision.delay_s <= policy.max_backoff_s + 1e-6
    assert decision.at == NOW + timedelta(seconds=decision.delay_s)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(1, MAX_ATTEMPTS - 1))
def test_backoff_before_jitter_never_shrinks_and_stays_capped(
    policy: RetryPolicy, attempt: int
) -> None:
    assert backoff(policy, attempt) <= backoff(policy, attempt + 1) <= policy.max_backoff_s


@settings(max_examples=200, deadline=None)
@given(policies, draws)
def test_attempts_are_capped_whatever_the_failures(policy: RetryPolicy, draw: float) -> None:
    """Fail every attempt: the policy gives up exactly after ``max_attempts``."""
    attempt = 1
    while True:
        decision = decide_retry(
            policy, attempt=attempt, error_kind="lost", retryable=True, now=NOW, draw=draw
        )
        if isinstance(decision, GiveUp):
            break
        attempt += 1
        assert attempt <= policy.max_attempts
    if "lost" in policy.non_retryable:
        assert attempt == 1 and not decision.dead
    else:
        assert attempt == policy.max_attempts and decision.dead


def test_the_default_backoff_doubles_from_one_second_to_a_minute() -> None:
    policy = RetryPolicy()
    assert [backoff(policy, n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_failure_that_is_not_retryable_fails_the_task_for_good() -> None:
    policy = RetryPolicy(non_retryable=frozenset({"bad-input"}))
    said = decide_retry(policy, attempt=1, error_kind=None, retryable=False, now=NOW, draw=0)
    kind = decide_retry(policy, attempt=1, error_kind="bad-input", retryable=True, now=NOW, draw=0)
    assert said == GiveUp("not retryable: the bot said so", dead=False)
    assert kind == GiveUp("not retryable: error kind 'bad-input'", dead=False)


def test_the_last_attempt_is_dead_lettered_with_the_count() -> None:
    decision = decide_retry(
        RetryPolicy(max_attempts=3), attempt=3, error_kind=None, retryable=True, now=NOW, draw=0
    )
    assert decision == GiveUp("attempts exhausted: 3 of 3", dead=True)


def test_the_jitter_is_drawn_from_the_attempt_so_a_decision_made_again_is_the_same() -> None:
    task = UUID(int=7)
    assert jitter_fraction(task, 1, 2) == jitter_fraction(task, 1, 2)
    spread = {jitter_fraction(task, 1, n) for n in range(1, 50)}
    assert len(spread) == 49 and all(0 <= f < 1 for f in spread)
    assert jitter_fraction(task, 2, 1) != jitter_fraction(task, 1, 1)  # a new series


@given(
    st.integers(1, MAX_ATTEMPTS),
    st.one_of(st.none(), st.floats(1, 100)),
    st.one_of(st.none(), st.integers(1, MAX_ATTEMPTS)),
    st.one_of(st.none(), st.floats(0.001, 1000)),
)
def test_a_submission_only_narrows_its_policy(
    max_attempts: int, timeout_s: float | None, asked: int | None, asked_timeout: float | None
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, timeout_s=timeout_s)
    narrowed = policy.narrowed(RetryLimits(asked, asked_timeout))
    assert narrowed.max_attempts <= policy.max_attempts
    if policy.timeout_s is not None:
        assert narrowed.timeout_s is not None and narrowed.timeout_s <= policy.timeout_s
    assert policy.narrowed(None) is policy
