"""The scaling policy: bounds, monotonicity, cooldowns, no flapping, and plans."""

from __future__ import annotations

import itertools
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.policies.scaling import (
    OpenLaunch,
    PoolBot,
    PoolLimits,
    PoolLoad,
    backoff_s,
    decide,
    need,
    plan,
)

limits_st = st.builds(
    lambda lo, span, slots, step, h: PoolLimits(
        min_bots=lo,
        max_bots=lo + span,
        slots_per_bot=slots,
        max_step=step,
        hysteresis=h,
        up_cooldown_s=1.0,
        down_cooldown_s=10.0,
    ),
    st.integers(0, 5),
    st.integers(0, 20),
    st.integers(1, 16),
    st.integers(1, 5),
    st.floats(0, 2),
)
load_st = st.builds(
    PoolLoad,
    backlog=st.integers(0, 5000),
    held=st.integers(0, 500),
    oldest_wait_s=st.floats(0, 600),
    throughput_per_bot=st.one_of(st.none(), st.floats(0.01, 1000)),
)


@given(limits_st, load_st, st.integers(0, 30), st.floats(0, 100))
def test_desired_stays_within_limits_and_moves_at_most_one_step(
    limits: PoolLimits, load: PoolLoad, current: int, since: float
) -> None:
    d = decide(limits, load, current=current, since_change_s=since).desired
    if limits.min_bots <= current <= limits.max_bots:
        assert limits.min_bots <= d <= limits.max_bots
    assert abs(d - current) <= limits.max_step


@given(limits_st, load_st, st.integers(0, 30), st.integers(1, 1000))
def test_more_backlog_never_asks_for_fewer_bots(
    limits: PoolLimits, load: PoolLoad, current: int, more: int
) -> None:
    heavier = PoolLoad(load.backlog + more, load.held, load.oldest_wait_s, load.throughput_per_bot)
    current = max(limits.min_bots, min(limits.max_bots, current))
    light = decide(limits, load, current=current, since_change_s=100).desired
    heavy = decide(limits, heavier, current=current, since_change_s=100).desired
    assert heavy >= light


@given(limits_st, load_st, st.integers(0, 30))
def test_cooldowns_hold_the_size(limits: PoolLimits, load: PoolLoad, current: int) -> None:
    current = max(limits.min_bots, min(limits.max_bots, current))
    d = decide(limits, load, current=current, since_change_s=0.5)  # under both cooldowns
    assert d.desired == current


@settings(max_examples=200)
@given(limits_st, load_st, st.integers(0, 30))
def test_steady_load_converges_and_never_flaps(
    limits: PoolLimits, load: PoolLoad, start: int
) -> None:
    """Under a constant load the size moves in one direction only, then stays."""
    current = max(limits.min_bots, min(limits.max_bots, start))
    sizes = [current]
    for _ in range(60):
        current = decide(limits, load, current=current, since_change_s=100).desired
        sizes.append(current)
    steps = [b - a for a, b in itertools.pairwise(sizes) if b != a]
    assert all(s > 0 for s in steps) or all(s < 0 for s in steps)
    assert sizes[-1] == sizes[-2]


@given(limits_st, st.integers(0, 30))
def test_no_load_returns_the_pool_to_its_minimum(limits: PoolLimits, start: int) -> None:
    current = max(limits.min_bots, min(limits.max_bots, start))
    idle = PoolLoad(backlog=0, held=0, oldest_wait_s=0, throughput_per_bot=None)
    for _ in range(40):
        current = decide(limits, idle, current=current, since_change_s=100).desired
    assert current == limits.min_bots


def test_hysteresis_keeps_a_pool_that_is_just_big_enough() -> None:
    limits = PoolLimits(min_bots=0, max_bots=10, slots_per_bot=4, hysteresis=0.25)
    load = PoolLoad(backlog=0, held=8, oldest_wait_s=0, throughput_per_bot=None)  # 2 bots' worth
    assert decide(limits, load, current=2, since_change_s=100).desired == 2  # not 3, not 1
    assert need(limits, 0, 8, None) == 2
    lighter = PoolLoad(backlog=0, held=7, oldest_wait_s=0, throughput_per_bot=None)
    assert decide(limits, lighter, current=2, since_change_s=100).reason == "steady"


def test_throughput_lets_short_tasks_use_fewer_bots_than_slots_would() -> None:
    limits = PoolLimits(max_bots=50, slots_per_bot=4, target_wait_s=10, max_step=50)
    fast = PoolLoad(backlog=400, held=0, oldest_wait_s=1, throughput_per_bot=20.0)
    assert decide(limits, fast, current=0, since_change_s=100).desired == 2  # 400/(20*10)
    unknown = PoolLoad(backlog=400, held=0, oldest_wait_s=1, throughput_per_bot=None)
    assert decide(limits, unknown, current=0, since_change_s=100).desired == 50  # by slots


def test_an_old_task_asks_for_one_more_bot() -> None:
    limits = PoolLimits(max_bots=5, slots_per_bot=4, max_oldest_wait_s=30)
    load = PoolLoad(backlog=1, held=4, oldest_wait_s=31, throughput_per_bot=0.01)
    assert decide(limits, load, current=2, since_change_s=100).desired == 3


def bot(n: int, state: str = "ready", held: int = 0) -> PoolBot:
    return PoolBot(UUID(int=n), UUID(int=1000 + n), state, held, float(n))


def test_plan_launches_up_to_desired_counting_launches_on_their_way() -> None:
    limits = PoolLimits(launch_timeout_s=20)
    on_the_way = [OpenLaunch(UUID(int=7), registered=False, stopping=False, age_s=3)]
    p = plan(limits, 4, [bot(1)], on_the_way, failures_in_a_row=0, since_failure_s=1e9)
    assert (p.launch, p.drain, p.give_up) == (2, (), ())


def test_plan_drains_the_idlest_newest_bots_and_stops_drained_idle_ones() -> None:
    limits = PoolLimits()
    bots = [bot(1, held=2), bot(2, held=0), bot(3, held=0), bot(4, "draining", held=0)]
    launches = [OpenLaunch(UUID(int=1004), registered=True, stopping=True, age_s=50)]
    p = plan(limits, 1, bots, launches, failures_in_a_row=0, since_failure_s=1e9)
    assert p.drain == (UUID(int=3), UUID(int=2))
    assert p.stop == (UUID(int=1004),)


def test_plan_gives_up_on_a_launch_that_never_registered_and_replaces_it() -> None:
    limits = PoolLimits(launch_timeout_s=20)
    stuck = [OpenLaunch(UUID(int=9), registered=False, stopping=False, age_s=21)]
    p = plan(limits, 1, [], stuck, failures_in_a_row=0, since_failure_s=1e9)
    assert p.give_up == (UUID(int=9),) and p.launch == 1


@given(st.integers(0, 40))
def test_failed_launches_back_off_exponentially_up_to_a_cap(failures: int) -> None:
    limits = PoolLimits(failure_backoff_s=2, max_failure_backoff_s=60)
    wait = backoff_s(limits, failures)
    assert 0 <= wait <= 60
    assert wait <= backoff_s(limits, failures + 1)
    since = wait - 0.01 if failures else 0.0
    p = plan(limits, 3, [], [], failures_in_a_row=failures, since_failure_s=since)
    assert p.launch == (3 if failures == 0 else 0)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        PoolLimits(min_bots=3, max_bots=2)
