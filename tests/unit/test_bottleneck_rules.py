"""The bottleneck report's rules on made-up snapshots: each fires on its trouble with its
evidence, stays quiet without it, and the ranking puts what cannot fix itself first."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.policies.bottlenecks import (
    SEVERITIES,
    Thresholds,
    findings,
    overhead_high,
    pool_waits,
    queue_wait,
    slow_bot,
    slow_loop,
    slow_route,
    slow_start,
    view_lag,
)
from domain.profile import (
    BotProfile,
    LoopTimings,
    PoolProfile,
    PoolWaits,
    ProcessTimings,
    RouteTimings,
    Snapshot,
    Stage,
    TypeProfile,
    ViewTimings,
)

TH = Thresholds()


def stage(mean_s: float, n: int = 20, p50: float | None = None) -> Stage:
    p = mean_s if p50 is None else p50
    return Stage(n, mean_s * n, p, p * 1.5, p * 2)


def code_type(queue_s: float, run_s: float, pending: int = 40) -> TypeProfile:
    """A type whose tasks wait ``queue_s``, are picked up in 10 ms and run ``run_s``."""
    e2e = queue_s + 0.01 + run_s
    return TypeProfile(
        "code",
        {
            "submit_assign": stage(queue_s),
            "assign_start": stage(0.01),
            "start_done": stage(run_s),
            "end_to_end": stage(e2e),
            "overhead": stage(e2e - run_s),
        },
        pending=pending,
        pools=("coders",),
    )


CODERS = PoolProfile("coders", bots=2, min_bots=0, max_bots=2, pending=40)


def test_queue_wait_names_the_share_and_a_pool_at_its_max() -> None:
    snap = Snapshot(300.0, types=(code_type(4.05, 0.94),), pools=(CODERS,))
    (f,) = queue_wait(snap, TH)
    assert f.severity == "critical"
    assert f.summary == (
        "81% of end-to-end time for type `code` is queue wait; "
        "pool coders is at max_bots=2 with 40 pending"
    )
    assert f.evidence["pool"] == "coders" and f.evidence["at_max"] is True
    assert f.evidence["pending"] == 40 and f.evidence["max_bots"] == 2
    assert f.score == 4.05 * 20 / 300.0  # task-seconds waited per second


def test_queue_wait_in_a_pool_that_can_still_grow_is_a_warning() -> None:
    roomy = PoolProfile("coders", bots=1, min_bots=0, max_bots=4, pending=40)
    snap = Snapshot(300.0, types=(code_type(4.0, 1.0),), pools=(roomy,))
    (f,) = queue_wait(snap, TH)
    assert f.severity == "warning" and "has 1 of max_bots=4" in f.summary


def test_queue_wait_without_a_pool_says_so() -> None:
    t = code_type(4.0, 1.0)
    snap = Snapshot(300.0, types=(TypeProfile(t.type, t.stages, pending=7),))
    (f,) = queue_wait(snap, TH)
    assert f.summary.endswith("; 7 pending and no pool serves it") and "pool" not in f.evidence


def test_no_queue_finding_for_short_or_rare_waits() -> None:
    assert queue_wait(Snapshot(300.0, types=(code_type(0.05, 0.01),)), TH) == []  # under 0.1 s
    few = TypeProfile("code", {"submit_assign": stage(5, n=4), "end_to_end": stage(6, n=4)})
    assert queue_wait(Snapshot(300.0, types=(few,)), TH) == []  # under 5 samples


def test_slow_start_fires_when_pick_up_dominates() -> None:
    t = TypeProfile(
        "scan",
        {"assign_start": stage(2.0), "start_done": stage(1.0), "end_to_end": stage(3.1)},
    )
    (f,) = slow_start(Snapshot(60.0, types=(t,)), TH)
    assert f.rule == "slow_start" and "65% of end-to-end time for type `scan`" in f.summary
    assert slow_start(Snapshot(60.0, types=(code_type(4.0, 1.0),)), TH) == []


def test_a_slow_bot_is_measured_against_its_type() -> None:
    t = code_type(0.0, 1.0)
    slow = BotProfile("b1", "coder-1", "coders", {}, runs={"code": stage(4.0, n=6)})
    fine = BotProfile("b2", "coder-2", "coders", {}, runs={"code": stage(1.2, n=30)})
    (f,) = slow_bot(Snapshot(300.0, types=(t,), bots=(slow, fine)), TH)
    assert f.evidence["bot"] == "coder-1" and f.evidence["type_p50_s"] == 1.0
    assert f.summary == "bot coder-1 runs `code` tasks in 4.0 s (p50), 4.0x the type's 1.0 s"
    few = BotProfile("b3", "coder-3", None, {}, runs={"code": stage(9.0, n=4)})
    assert slow_bot(Snapshot(300.0, types=(t,), bots=(few,)), TH) == []


def test_overhead_high_when_the_hive_not_the_queue_takes_the_time() -> None:
    t = TypeProfile(
        "ping",
        {
            "submit_assign": stage(0.02),
            "start_done": stage(0.05),
            "end_to_end": stage(0.45),
            "overhead": stage(0.4),
        },
    )
    (f,) = overhead_high(Snapshot(60.0, types=(t,)), TH)
    assert f.evidence["overhead_p50_s"] == 0.4 and f.evidence["run_p50_s"] == 0.05
    # the same overhead made of queue wait is queue_wait's finding, not this one's
    assert overhead_high(Snapshot(60.0, types=(code_type(4.0, 1.0),)), TH) == []


def test_loop_rules_tell_cpu_from_waiting() -> None:
    hot = LoopTimings("dispatcher", 3000, 0.02, 0.045, 0.93, 50.0, 2000)
    cold = LoopTimings("reaper", 600, 0.03, 0.2, 0.1, 1.0, 0)
    snap = Snapshot(300.0, process=ProcessTimings(loops=(hot, cold)))
    cpu, waits = slow_loop(snap, TH)
    assert cpu.summary == (
        "dispatcher rounds p99 45 ms at 2,000 pending; the dispatcher is CPU-bound"
    )
    assert cpu.score == 3000 * 0.02 / 300.0
    assert waits.evidence["loop"] == "reaper" and "10% of it on the CPU" in waits.summary


def test_routes_views_and_pools() -> None:
    snap = Snapshot(
        60.0,
        process=ProcessTimings(
            routes=(
                RouteTimings("POST /v1/tasks", 500, 0.05, 0.9),
                RouteTimings("GET /v1/tasks", 5, 0.05, 3.0),  # too few to say
            ),
            views=(ViewTimings("tasks", 50_000, 0.0), ViewTimings("stages", 2000, 1000.0)),
            pools=(PoolWaits("api@h:1", "reads", 40, 25.0), PoolWaits("e", "reads", 3, 1.0)),
        ),
    )
    assert [f.evidence["route"] for f in slow_route(snap, TH)] == ["POST /v1/tasks"]
    stuck, moving = view_lag(snap, TH)
    assert stuck.severity == "critical" and "not moving" in stuck.summary
    assert moving.severity == "warning" and moving.evidence["catch_up_s"] == 2.0
    (waits,) = pool_waits(snap, TH)
    assert waits.evidence["process"] == "api@h:1"


def test_the_capped_pools_queue_outranks_everything_else() -> None:
    snap = Snapshot(
        300.0,
        types=(code_type(4.0, 1.0),),
        pools=(CODERS,),
        process=ProcessTimings(
            loops=(LoopTimings("dispatcher", 3000, 0.02, 0.045, 0.93, 50.0, 2000),),
            views=(ViewTimings("stages", 2000, 1000.0),),
        ),
    )
    ranked = findings(snap)
    assert [f.rule for f in ranked] == ["queue_wait", "loop_cpu_bound", "view_lag"]


stages_st = st.builds(
    lambda n, mean, p50: Stage(n, n * mean, p50, p50 * 1.5, p50 * 2),
    st.integers(0, 200),
    st.floats(0, 100),
    st.floats(0, 100),
)
types_st = st.builds(
    TypeProfile,
    st.sampled_from(["a", "b", "c"]),
    st.dictionaries(
        st.sampled_from(["submit_assign", "assign_start", "start_done", "end_to_end", "overhead"]),
        stages_st,
    ),
    st.integers(0, 10_000),
    st.tuples(st.sampled_from(["p", "q"])),
)
pools_st = st.builds(
    PoolProfile,
    st.sampled_from(["p", "q"]),
    st.integers(0, 5),
    st.just(0),
    st.integers(0, 5),
    st.integers(0, 100),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(types_st, max_size=4), st.lists(pools_st, max_size=2), st.floats(10, 3600))
def test_findings_are_ranked_bounded_and_explained(
    types: list[TypeProfile], pools: list[PoolProfile], window_s: float
) -> None:
    ranked = findings(Snapshot(window_s, tuple(types), tuple(pools)))
    keys = [(SEVERITIES.index(f.severity), -f.score) for f in ranked]
    assert keys == sorted(keys)
    for f in ranked:
        assert f.score >= 0 and f.summary and f.evidence
        if f.rule in ("queue_wait", "slow_start"):
            assert 0 < f.evidence["share"] <= 1


@settings(max_examples=100, deadline=None)
@given(st.floats(0.1, 100), st.floats(0.01, 100), st.integers(5, 200))
def test_queue_wait_fires_exactly_when_its_share_passes_the_threshold(
    queue_s: float, rest_s: float, n: int
) -> None:
    t = TypeProfile(
        "a", {"submit_assign": stage(queue_s, n), "end_to_end": stage(queue_s + rest_s, n)}
    )
    fired = queue_wait(Snapshot(60.0, types=(t,)), TH)
    assert bool(fired) == (queue_s / (queue_s + rest_s) >= TH.queue_share)
