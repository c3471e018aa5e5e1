"""The circuit breaker's pure policy: when it trips, when a bot probes, what the probe's end
does. Hypothesis drives the thresholds and the histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.policies.breaker import (
    Attempt,
    BreakerConfig,
    BreakerState,
    Closed,
    Decision,
    HalfOpen,
    Open,
    Probe,
    Reinstate,
    Reopen,
    RollingTally,
    Trip,
    decide,
    next_cooldown,
    tally,
)

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def decided(
    history: list[Attempt],
    config: BreakerConfig,
    state: BreakerState,
    now: datetime = NOW,
    slots: int = 1,
) -> Decision | None:
    """The policy's decision over a whole history, as its tally."""
    return decide(tally(history, config, now), config, state, now, slots)


configs = st.builds(
    BreakerConfig,
    consecutive_failures=st.integers(1, 20),
    failure_rate=st.floats(0.05, 1.0),
    window_s=st.floats(1.0, 600.0),
    min_attempts=st.integers(1, 30),
    cooldown_s=st.floats(0.5, 100.0),
    max_cooldown_s=st.floats(100.0, 3600.0),
)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 60) -> list[Attempt]:
    """Attempts oldest first, ending up to 20 minutes before ``NOW``."""
    ages = sorted(draw(st.lists(st.floats(0, 1200), max_size=max_size)), reverse=True)
    return [
        Attempt(NOW - timedelta(seconds=age), draw(st.booleans()), draw(st.sampled_from(KINDS)))
        for age in ages
    ]


KINDS = ["lost", "timeout", "crash", None]


def failures(n: int, *, every_s: float = 1.0) -> list[Attempt]:
    return [Attempt(NOW - timedelta(seconds=every_s * (n - i)), False, "crash") for i in range(n)]


@given(configs, histories())
def test_it_never_trips_below_both_thresholds(
    config: BreakerConfig, history: list[Attempt]
) -> None:
    since = NOW - timedelta(seconds=config.window_s)
    recent = [a for a in history if a.at > since]
    failed = sum(not a.succeeded for a in recent)
    below_rate = (
        len(recent) < config.min_attempts
        or failed == 0
        or failed / len(recent) < config.failure_rate
    )
    streak = len(history) - max((i + 1 for i, a in enumerate(history) if a.succeeded), default=0)
    if streak < config.consecutive_failures and below_rate:
        assert decided(history, config, Closed(), NOW) is None


@given(configs, histories(max_size=20))
def test_it_trips_at_the_consecutive_threshold_whatever_came_before(
    config: BreakerConfig, before: list[Attempt]
) -> None:
    history = [*before, *failures(config.consecutive_failures)]
    decision = decided(history, config, Closed(), NOW)
    assert isinstance(decision, Trip)
    assert decision.cooldown_s == config.cooldown_s
    assert decision.evidence["consecutive_failures"] >= config.consecutive_failures


@given(st.integers(1, 20))
def test_one_failure_short_of_the_streak_does_not_trip(n: int) -> None:
    config = BreakerConfig(consecutive_failures=n, min_attempts=10_000)
    assert decided(failures(n - 1), config, Closed(), NOW) is None
    assert isinstance(decided(failures(n), config, Closed(), NOW), Trip)


@given(st.integers(1, 20), st.integers(1, 300))
def test_a_bot_of_many_slots_trips_on_a_streak_only_as_long_as_its_slots(
    n: int, slots: int
) -> None:
    """A bot reports its slots' outcomes in batches: failures of attempts that ran side by
    side may follow each other in the log. A streak shorter than its slots proves nothing."""
    config = BreakerConfig(consecutive_failures=n, min_attempts=10_000)
    needed = max(n, slots)
    assert decided(failures(needed - 1), config, Closed(), NOW, slots) is None
    tripped = decided(failures(needed), config, Closed(), NOW, slots)
    assert isinstance(tripped, Trip) and tripped.evidence["rule"] == "consecutive"


@given(st.integers(2, 30), st.floats(0.05, 1.0))
def test_it_trips_at_the_failure_rate_over_the_window(n: int, rate: float) -> None:
    config = BreakerConfig(consecutive_failures=10_000, failure_rate=rate, min_attempts=n)
    failed = next(f for f in range(1, n + 1) if f / n >= rate)  # the fewest that reach it
    history = [Attempt(NOW - timedelta(seconds=n - i), i >= failed, "crash") for i in range(n)]
    decision = decided(history, config, Closed(), NOW)
    assert isinstance(decision, Trip)
    assert decision.evidence["rule"] == "rate"
    assert (decision.evidence["failures"], decision.evidence["attempts"]) == (failed, n)
    assert decided(history[:-1], config, Closed(), NOW) is None  # too few attempts yet
    if failed > 1:  # one failure fewer is below the rate
        fewer = [Attempt(a.at, a.succeeded or i == 0, a.kind) for i, a in enumerate(history)]
        assert decided(fewer, config, Closed(), NOW) is None


def test_attempts_outside_the_window_do_not_count_for_the_rate() -> None:
    config = BreakerConfig(consecutive_failures=100, failure_rate=0.5, window_s=60, min_attempts=4)
    old = [Attempt(NOW - timedelta(seconds=120 + i), False, "crash") for i in range(10)]
    recent = [Attempt(NOW - timedelta(seconds=10 - i), i % 2 == 0, "crash") for i in range(3)]
    assert decided([*old, *recent], config, Closed(), NOW) is None
    tripped = decided([*old, *recent, Attempt(NOW, False, "crash")], config, Closed(), NOW)
    assert isinstance(tripped, Trip) and tripped.evidence["attempts"] == 4


def test_the_evidence_names_the_counts_the_window_and_the_last_kinds() -> None:
    history = [Attempt(NOW - timedelta(seconds=7 - i), False, f"k{i}") for i in range(7)]
    decision = decided(history, BreakerConfig(consecutive_failures=7), Closed(), NOW)
    assert isinstance(decision, Trip)
    assert decision.evidence == {
        "rule": "consecutive",
        "consecutive_failures": 7,
        "attempts": 7,
        "failures": 7,
        "window_s": 60.0,
        "failure_rate": 1.0,
        "kinds": ["k2", "k3", "k4", "k5", "k6"],
    }


@given(configs, histories())
def test_a_disabled_breaker_never_trips(config: BreakerConfig, history: list[Attempt]) -> None:
    off = BreakerConfig(**{**vars(config), "enabled": False})
    assert decided([*history, *failures(50)], off, Closed(), NOW) is None


@given(configs, st.floats(0.0, 1000.0))
def test_an_open_breaker_probes_once_its_cooldown_has_passed(
    config: BreakerConfig, cooldown: float
) -> None:
    until = NOW + timedelta(seconds=cooldown)
    assert decided([], config, Open(until, cooldown), until) == Probe(cooldown)
    early = until - timedelta(microseconds=1)
    assert decided(failures(99), config, Open(until, cooldown), early) is None


@given(configs, st.floats(0.5, 3600.0), histories())
def test_a_success_in_half_open_reinstates(
    config: BreakerConfig, cooldown: float, history: list[Attempt]
) -> None:
    probe = Attempt(NOW, True)
    assert decided(history, config, HalfOpen(cooldown, probe), NOW) == Reinstate()


@given(configs, st.floats(0.5, 3600.0))
def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap(
    config: BreakerConfig, cooldown: float
) -> None:
    cooldown = min(cooldown, config.max_cooldown_s)
    decision = decided([], config, HalfOpen(cooldown, Attempt(NOW, False, "crash")), NOW)
    assert isinstance(decision, Reopen)
    assert decision.cooldown_s == min(2 * cooldown, config.max_cooldown_s)
    assert cooldown <= decision.cooldown_s <= config.max_cooldown_s
    assert decision.evidence["kinds"] == ["crash"]


@given(configs)
def test_repeated_failed_probes_reach_the_cap_and_stay_there(config: BreakerConfig) -> None:
    cooldown, seen = config.cooldown_s, [config.cooldown_s]
    for _ in range(40):
        cooldown = next_cooldown(cooldown, config)
        seen.append(cooldown)
    assert seen == sorted(seen) and seen[-1] == config.max_cooldown_s


def test_a_probe_still_out_decides_nothing() -> None:
    assert decided(failures(10), BreakerConfig(), HalfOpen(30.0), NOW) is None


@given(configs, histories(max_size=80), st.integers(0, 80))
def test_the_rolling_tally_equals_the_tally_of_the_whole_history(
    config: BreakerConfig, history: list[Attempt], looked: int
) -> None:
    """What the engine keeps as attempts end (looking in between, which drops the old ones)
    equals the tally of every attempt: the decisions are the same."""
    rolling = RollingTally()
    for i, attempt in enumerate(history):
        rolling.add(attempt)
        if i == looked:
            rolling.at(config, attempt.at)
    assert rolling.at(config, NOW) == tally(history, config, NOW)
