"""The routing policy and the order it takes tasks in: bounds, monotonicity, fair trial,
priorities, aging. Pure functions, so hypothesis drives them directly; the starvation bound
through the live index and the dispatcher is in test_dispatcher.py."""

from __future__ import annotations

import random
from collections import Counter
from uuid import UUID

from hypothesis import assume, given
from hypothesis import strategies as st

from domain.policies.aging import CEILING, Aging
from domain.policies.performance import Performance
from domain.policies.routing import (
    POLICY,
    SHOWN,
    TRIAL_SAMPLES,
    Assignment,
    BotSlots,
    PendingTask,
    RoutingConfig,
    Stats,
    route,
    score,
)

NOW = 1_900_000_000.0
CAPS = ("a", "b", "c")

records = st.builds(
    Performance,
    success=st.floats(0.0, 1.0),
    duration_s=st.none() | st.floats(0.0, 100.0),
    samples=st.integers(1, 40),
)


@st.composite
def hives(draw: st.DrawFn) -> tuple[list[PendingTask], list[BotSlots], Stats]:
    n_bots = draw(st.integers(1, 6))
    bots = []
    for i in range(n_bots):
        caps = draw(st.sets(st.sampled_from(CAPS), min_size=1))
        capacity = draw(st.integers(1, 5))
        load = draw(st.integers(0, capacity))
        bots.append(
            BotSlots(
                UUID(int=draw(st.integers(1, 2**64)) << 8 | i), frozenset(caps), capacity, load
            )
        )
    tasks = []
    for seq in range(draw(st.integers(0, 30))):
        caps = draw(st.sets(st.sampled_from(CAPS), min_size=1, max_size=2))
        tasks.append(
            PendingTask(
                UUID(int=10**6 + seq),
                draw(st.integers(0, 9)),
                seq,
                frozenset(caps),
                draw(st.sampled_from(sorted(caps))),
                NOW - draw(st.floats(0.0, 900.0)),
            )
        )
    stats = {
        (b.bot_id, t): draw(records)
        for b in bots
        for t in sorted(b.capabilities)
        if draw(st.booleans())
    }
    return tasks, bots, stats


def by_bot(assignments: list[Assignment]) -> Counter[UUID]:
    return Counter(a.bot_id for a in assignments)


@given(hives())
def test_capabilities_match_capacity_holds_and_only_given_bots_are_used(
    hive: tuple[list[PendingTask], list[BotSlots], Stats],
) -> None:
    tasks, bots, stats = hive
    loads = [b.load for b in bots]
    assignments = route(tasks, bots, stats, NOW)
    assert [b.load for b in bots] == loads, "the caller's bots were changed"
    given_bots = {b.bot_id: b for b in bots}
    needs = {t.task_id: t.capabilities for t in tasks}
    assert len({a.task_id for a in assignments}) == len(assignments)
    for a in assignments:
        assert a.bot_id in given_bots
        assert needs[a.task_id] <= given_bots[a.bot_id].capabilities
    for bot_id, n in by_bot(assignments).items():
        assert n <= given_bots[bot_id].free


@given(hives())
def test_no_task_is_left_while_a_capable_bot_has_a_free_slot(
    hive: tuple[list[PendingTask], list[BotSlots], Stats],
) -> None:
    tasks, bots, stats = hive
    assignments = route(tasks, bots, stats, NOW)
    taken = by_bot(assignments)
    assigned = {a.task_id for a in assignments}
    for t in tasks:
        if t.task_id not in assigned:
            assert all(
                b.free - taken[b.bot_id] <= 0 for b in bots if t.capabilities <= b.capabilities
            )


@given(hives(), st.randoms(use_true_random=False))
def test_deterministic_whatever_order_tasks_and_bots_come_in(
    hive: tuple[list[PendingTask], list[BotSlots], Stats], rnd: random.Random
) -> None:
    tasks, bots, stats = hive
    first = route(tasks, bots, stats, NOW)
    rnd.shuffle(tasks)
    rnd.shuffle(bots)
    again = route(tasks, bots, stats, NOW)
    assert [(a.task_id, a.bot_id, a.why) for a in first] == [
        (a.task_id, a.bot_id, a.why) for a in again
    ]


@given(
    st.integers(0, 50),
    st.integers(1, 50),
    st.none() | records,
    st.none() | st.floats(0.0, 100.0),
    st.integers(0, 10),
)
def test_scores_are_within_0_and_1_and_rise_with_free_capacity_and_success(
    free: int, capacity: int, record: Performance | None, best: float | None, trial: int
) -> None:
    assume(free <= capacity)
    s = score(free, capacity, record, best, trial)
    assert 0.0 <= s <= 1.0
    if free < capacity:
        assert score(free + 1, capacity, record, best, trial) > s
    assert score(free + 1, capacity + 1, record, best, trial) >= s  # as much load, more room
    if record is not None:
        better = Performance(min(1.0, record.success + 0.1), record.duration_s, record.samples)
        assert score(free, capacity, better, best, trial) >= s
        if record.duration_s is not None:
            faster = Performance(record.success, record.duration_s / 2, record.samples)
            assert score(free, capacity, faster, best, trial) >= s


@given(st.lists(records, min_size=1, max_size=5), st.integers(2, 8), st.data())
def test_a_new_bot_gets_a_fair_trial_beside_proven_peers(
    peers: list[Performance], capacity: int, data: st.DataObject
) -> None:
    """Peers with any record and as much room as the newcomer, or less: with as many tasks
    as bots, the newcomer (no samples) gets at least one."""
    newcomer = BotSlots(UUID(int=2**100), frozenset({"a"}), capacity, 0)
    bots = [newcomer]
    for i, _ in enumerate(peers):
        load = data.draw(st.integers(0, capacity - 1), label=f"load of peer {i}")
        bots.append(BotSlots(UUID(int=i + 1), frozenset({"a"}), capacity, load))
    stats = {(b.bot_id, "a"): r for b, r in zip(bots[1:], peers, strict=True)}
    tasks = [
        PendingTask(UUID(int=10**6 + i), 5, i, frozenset({"a"}), "a", NOW) for i in range(len(bots))
    ]
    assert by_bot(route(tasks, bots, stats, NOW))[newcomer.bot_id] >= 1


def test_a_bot_that_fails_a_type_gets_it_only_when_the_good_one_is_full() -> None:
    good, poor = UUID(int=2), UUID(int=1)  # the poor one would win a tie on its id
    stats = {
        (good, "a"): Performance(0.95, 2.0, 30),
        (poor, "a"): Performance(0.1, 2.0, 30),
    }
    bots = [BotSlots(good, frozenset({"a"}), 4, 0), BotSlots(poor, frozenset({"a"}), 4, 0)]
    tasks = [PendingTask(UUID(int=100 + i), 5, i, frozenset({"a"}), "a", NOW) for i in range(6)]
    got = by_bot(route(tasks, bots, stats, NOW))
    assert got == {good: 4, poor: 2}


def test_equally_good_bots_share_the_load_by_their_room() -> None:
    bots = [BotSlots(UUID(int=i + 1), frozenset({"a"}), 10, 0) for i in range(3)]
    tasks = [PendingTask(UUID(int=100 + i), 5, i, frozenset({"a"}), "a", NOW) for i in range(9)]
    assert sorted(by_bot(route(tasks, bots, {}, NOW)).values()) == [3, 3, 3]


@given(hives())
def test_priorities_are_honoured_when_waits_are_equal(
    hive: tuple[list[PendingTask], list[BotSlots], Stats],
) -> None:
    """Same submission time: a task is left over only if every task that needs the same
    capabilities and was assigned has at least its priority."""
    tasks, bots, stats = hive
    tasks = [t._replace(since=NOW - 5) for t in tasks]
    assigned = {a.task_id for a in route(tasks, bots, stats, NOW)}
    for left in (t for t in tasks if t.task_id not in assigned):
        for t in tasks:
            if t.task_id in assigned and t.capabilities == left.capabilities:
                assert t.priority >= left.priority


@given(hives())
def test_each_decision_records_its_inputs_and_scores(
    hive: tuple[list[PendingTask], list[BotSlots], Stats],
) -> None:
    tasks, bots, stats = hive
    by_id = {t.task_id: t for t in tasks}
    for a in route(tasks, bots, stats, NOW):
        why, task = a.why, by_id[a.task_id]
        assert why["policy"] == POLICY and why["type"] == task.type
        assert why["required"] == sorted(task.capabilities)
        assert why["waited_s"] == round(NOW - task.since, 3)
        assert 0 <= why["effective_priority"] <= CEILING
        shown = why["bots"]
        assert 1 <= len(shown) <= SHOWN and shown[0]["bot"] == str(a.bot_id)
        scores = [b["score"] for b in shown]
        assert scores == sorted(scores, reverse=True)
        assert len({b["bot"] for b in shown}) == len(shown)
        for b in shown:
            assert b["free"] >= 1 and {"capacity", "samples", "score"} <= b.keys()


# -- aging: the order tasks are taken in ---------------------------------------------------


@given(
    st.floats(0.5, 120.0),
    st.integers(0, 9),
    st.floats(1e-3, 3600.0),  # past the bound by more than the clock's rounding
    st.lists(st.tuples(st.integers(0, 9), st.floats(0.0, 3600.0)), max_size=20),
)
def test_a_task_at_the_ceiling_is_behind_only_older_tasks(
    step: float, priority: int, extra: float, others: list[tuple[int, float]]
) -> None:
    """Waiting (ceiling - priority) x step puts a task ahead of every younger task."""
    aging = Aging(step)
    old = PendingTask(
        UUID(int=1), priority, 0, frozenset({"a"}), "a", NOW - aging.wait_bound_s(priority) - extra
    )
    tasks = [old] + [
        PendingTask(UUID(int=i + 2), p, i + 1, frozenset({"a"}), "a", NOW - age)
        for i, (p, age) in enumerate(others)
    ]
    ordered = sorted(tasks, key=aging.order(NOW))
    ahead = ordered[: ordered.index(old)]
    assert all(t.since < old.since for t in ahead)


@given(
    st.floats(0.5, 120.0),
    st.integers(0, 9),
    st.integers(0, 9),
    st.floats(0.0, 1e4),
    st.floats(0.0, 1e4),
)
def test_effective_priority_rises_with_waiting_and_priority_up_to_the_ceiling(
    step: float, p: int, q: int, wait: float, more: float
) -> None:
    aging = Aging(step)
    e = aging.effective(p, wait)
    assert p <= e <= CEILING
    assert aging.effective(p, wait + more) >= e
    if q > p:
        assert aging.effective(q, wait) >= e


def test_route_takes_an_aged_low_priority_task_before_fresh_urgent_ones() -> None:
    bot = BotSlots(UUID(int=1), frozenset({"a"}), 1, 0)
    config = RoutingConfig(aging=Aging(30.0))
    old = PendingTask(UUID(int=2), 0, 1, frozenset({"a"}), "a", NOW - 301)
    fresh = [
        PendingTask(UUID(int=10 + i), 9, 2 + i, frozenset({"a"}), "a", NOW - 1) for i in range(5)
    ]
    [a] = route([*fresh, old], [bot], {}, NOW, config)
    assert a.task_id == old.task_id
    assert a.why["effective_priority"] == CEILING and a.why["waited_s"] == 301.0


def test_trial_samples_decide_when_a_record_counts_fully() -> None:
    bots = [
        BotSlots(UUID(int=1), frozenset({"a"}), 1, 0),
        BotSlots(UUID(int=2), frozenset({"a"}), 1, 0),
    ]
    poor = Performance(0.0, 1.0, TRIAL_SAMPLES - 1)
    stats = {(UUID(int=1), "a"): poor}
    task = [PendingTask(UUID(int=9), 5, 1, frozenset({"a"}), "a", NOW)]
    assert route(task, bots, stats, NOW)[0].bot_id == UUID(int=2)  # untried beats poor
    proven = {(UUID(int=1), "a"): Performance(1.0, 1.0, TRIAL_SAMPLES)}
    assert route(task, bots, proven, NOW)[0].bot_id == UUID(int=1)  # a tie: the lower id


# -- retries go elsewhere -------------------------------------------------------------------


@st.composite
def retried_hives(draw: st.DrawFn) -> tuple[list[PendingTask], list[BotSlots], Stats]:
    """As ``hives``, and some tasks avoid some bots (their failed attempts' bots)."""
    tasks, bots, stats = draw(hives())
    ids = [b.bot_id for b in bots]
    avoided = [frozenset(draw(st.sets(st.sampled_from(ids)))) for _ in tasks]
    return [t._replace(avoid=a) for t, a in zip(tasks, avoided, strict=True)], bots, stats


@given(retried_hives())
def test_an_avoided_bot_gets_a_task_only_when_no_other_capable_bot_has_a_free_slot(
    hive: tuple[list[PendingTask], list[BotSlots], Stats],
) -> None:
    tasks, bots, stats = hive
    by_id = {t.task_id: t for t in tasks}
    free = {b.bot_id: b.free for b in bots}
    assignments = route(tasks, bots, stats, NOW)
    for a in assignments:  # in the order decided: the loads as each decision saw them
        task = by_id[a.task_id]
        if a.bot_id in task.avoid:
            others = [
                b
                for b in bots
                if b.bot_id not in task.avoid and task.capabilities <= b.capabilities
            ]
            assert all(free[b.bot_id] <= 0 for b in others), "an avoided bot, with others free"
        assert a.why["bots"][0]["bot"] == str(a.bot_id)  # the chosen bot comes first
        free[a.bot_id] -= 1
    taken = by_bot(assignments)
    assigned = {a.task_id for a in assignments}
    for t in tasks:  # capacity is still the constraint: none left while a slot is free
        if t.task_id not in assigned:
            assert all(
                b.free - taken[b.bot_id] <= 0 for b in bots if t.capabilities <= b.capabilities
            )


def test_a_retry_goes_past_the_best_bots_that_failed_it_to_one_that_did_not() -> None:
    bots = [BotSlots(UUID(int=i + 1), frozenset({"a"}), 4, 0) for i in range(SHOWN + 2)]
    stats = {  # the better the bot, the lower its id's rank: the last is the worst
        (b.bot_id, "a"): Performance(1.0 - 0.1 * i, 1.0, 30) for i, b in enumerate(bots)
    }
    failed = frozenset(b.bot_id for b in bots[: SHOWN + 1])  # past the bots a choice shows
    retry = PendingTask(UUID(int=100), 5, 1, frozenset({"a"}), "a", NOW, failed)
    fresh = PendingTask(UUID(int=101), 5, 2, frozenset({"a"}), "a", NOW)
    got = {a.task_id: a for a in route([retry, fresh], bots, stats, NOW)}
    assert got[retry.task_id].bot_id == bots[-1].bot_id
    assert len(got[retry.task_id].why["bots"]) == SHOWN
    assert got[fresh.task_id].bot_id == bots[0].bot_id  # the others are as they were


def test_a_retry_goes_back_to_a_bot_that_failed_it_when_no_other_has_room() -> None:
    failed, busy = UUID(int=1), UUID(int=2)
    bots = [BotSlots(failed, frozenset({"a"}), 2, 0), BotSlots(busy, frozenset({"a"}), 1, 1)]
    retry = PendingTask(UUID(int=100), 5, 1, frozenset({"a"}), "a", NOW, frozenset({failed}))
    assert [a.bot_id for a in route([retry], bots, {}, NOW)] == [failed]
