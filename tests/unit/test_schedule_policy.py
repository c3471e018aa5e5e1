"""The schedule policy: when ticks fall (cron with a zone, intervals) and what is due now.

Pure functions, tested with examples (daylight saving time spelled out) and properties:
ticks strictly increase; successive decisions with an advancing clock never decide a tick
twice and account for every tick; catch-up stays within its bound. Decisions are recorded
on a real ``Schedule`` aggregate (in memory), which refuses a tick that does not move on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise, takewhile
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cause import Cause
from domain.errors import InvalidInput
from domain.policies import triggers
from domain.policies.schedule import (
    INSTANT,
    MAX_TICKS_PER_DECISION,
    MISFIRE_GRACE,
    Catchup,
    Overlap,
    SkipReason,
    due,
)
from domain.schedules import Schedule, ScheduleSpec, TaskTemplate

ENGINE = Cause.engine("scheduler", "test")
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def schedule(at: datetime = T0, **spec: object) -> Schedule:
    fields: dict[str, object] = {"name": "job", "template": TaskTemplate("code"), **spec}
    if "cron" not in fields and "every_s" not in fields:
        fields["every_s"] = 60
    return Schedule.create(
        schedule_id=UUID(int=7),
        spec=ScheduleSpec(**fields),  # type: ignore[arg-type]
        cause=ENGINE,
        at=at,
    )


# -- triggers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("61 * * * *", "UTC", "bad minute field"),
        ("* 24 * * *", "UTC", "bad hour field"),
        ("0 0 30 2 *", "UTC", "bad day-of-month field"),
        ("* * * *", "UTC", "5 fields"),
        ("* * * * * *", "UTC", "5 fields"),
        ("@sometimes", "UTC", "5 fields"),
        ("0 9 * * MON", "Mars/Olympus_Mons", "unknown time zone"),
        ("0 9 * * MON", "localtime", "unknown time zone"),
        ("0 9 * * MON", "../../etc/passwd", "unknown time zone"),
    ],
)
def test_invalid_cron_triggers_say_what_is_wrong(expression: str, zone: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        triggers.cron(expression, zone)


@pytest.mark.parametrize("every_s", [0, -5, triggers.MAX_EVERY_S + 1])
def test_intervals_out_of_bounds_are_refused(every_s: int) -> None:
    with pytest.raises(InvalidInput, match="every_s"):
        triggers.interval(every_s, T0)


def test_aliases_expand_to_five_fields() -> None:
    assert triggers.cron("@daily", "UTC").expression == "0 0 * * *"
    assert triggers.cron(" 0  9 * * MON-FRI ", "UTC").expression == "0 9 * * MON-FRI"


def test_a_daily_0230_job_in_berlin_on_the_spring_forward_day_runs_at_0300_cest() -> None:
    job = triggers.cron("30 2 * * *", "Europe/Berlin")
    ticks = list(islice(job.ticks_after(utc(2026, 3, 28, 12)), 2))
    assert [t.astimezone(BERLIN).isoformat() for t in ticks] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
    ]


def test_a_daily_0230_job_in_berlin_on_the_fall_back_day_runs_once() -> None:
    job = triggers.cron("30 2 * * *", "Europe/Berlin")
    ticks = list(islice(job.ticks_after(utc(2026, 10, 24, 12)), 2))
    assert [t.astimezone(BERLIN).isoformat() for t in ticks] == [
        "2026-10-25T02:30:00+02:00",  # the first of the two 02:30s, and only that one
        "2026-10-26T02:30:00+01:00",
    ]
    # asked from inside the repeated hour, it does not go back to the first 02:30
    inside = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=BERLIN).astimezone(UTC)
    assert next(job.ticks_after(inside)) == ticks[1]


def test_a_job_on_every_half_hour_follows_real_time_across_dst() -> None:
    job = triggers.cron("*/30 * * * *", "Europe/Berlin")
    spring = list(islice(job.ticks_after(utc(2026, 3, 29, 0, 15)), 2))
    assert [t.astimezone(BERLIN).strftime("%H:%M%z") for t in spring] == [
        "01:30+0100",
        "03:00+0200",
    ]
    end = utc(2026, 10, 25, 1, 30)
    fall = list(takewhile(lambda t: t <= end, job.ticks_after(utc(2026, 10, 24, 23, 45))))
    assert [t.astimezone(BERLIN).strftime("%H:%M%z") for t in fall] == [
        "02:00+0200",
        "02:30+0200",
        "02:00+0100",  # the repeated hour runs again: real time goes on
        "02:30+0100",
    ]


CRON_FIELDS = st.tuples(
    st.sampled_from(["*", "0", "30", "*/15", "5,35", "0-10/5"]),
    st.sampled_from(["*", "2", "1-3", "*/6", "0,2,23"]),
    st.sampled_from(["*", "1", "15", "L", "*/10"]),
    st.sampled_from(["*", "3", "10", "*/4"]),
    st.sampled_from(["*", "0", "MON-FRI", "SUN", "6"]),
)
INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2031, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(fields=CRON_FIELDS, zone=st.sampled_from(ZONES), after=INSTANTS)
def test_cron_ticks_strictly_increase_after_the_instant_asked(
    fields: tuple[str, ...], zone: str, after: datetime
) -> None:
    job = triggers.cron(" ".join(fields), zone)
    ticks = list(islice(job.ticks_after(after), 40))
    assert ticks, "a valid expression fires again"
    assert all(t.tzinfo is UTC for t in ticks)
    assert ticks[0] > after
    assert all(a < b for a, b in pairwise(ticks))
    # asking again from any tick continues the same sequence
    assert list(islice(job.ticks_after(ticks[5]), 10)) == ticks[6:16]


@settings(max_examples=200, deadline=None)
@given(
    every_s=st.integers(1, 10**6),
    anchor=INSTANTS,
    offset=st.integers(-(10**8), 10**9),
)
def test_interval_ticks_are_exact_multiples_from_the_anchor(
    every_s: int, anchor: datetime, offset: int
) -> None:
    job = triggers.interval(every_s, anchor)
    after = anchor + timedelta(microseconds=offset * 997)
    first, second = islice(job.ticks_after(after), 2)
    step = timedelta(seconds=every_s)
    assert (first - anchor) % step == timedelta(0) and first >= anchor
    assert first > after and (first - step <= after or first == anchor)
    assert second - first == step


# -- catch-up -----------------------------------------------------------------------------


def downtime(catchup: str, limit: int = 10) -> Schedule:
    """An hourly schedule, about to be looked at after its engine was away."""
    return schedule(every_s=3600, catchup=catchup, catchup_limit=limit, overlap="allow_all")


def now_after(missed: int, late_s: int = 0) -> datetime:
    """``late_s`` seconds after the ``missed``-th tick (the first is at T0)."""
    return T0 + timedelta(seconds=3600 * (missed - 1) + late_s)


def test_skip_runs_none_of_the_missed_ticks_only_an_on_time_one() -> None:
    s = downtime("skip")
    late = due(s.timing, now_after(50, late_s=61), previous_run_open=False)
    assert late.fire == () and late.missed is not None and late.missed.count == 50
    on_time = due(s.timing, now_after(50, late_s=60), previous_run_open=False)
    assert on_time.fire == (now_after(50),)
    assert on_time.missed is not None and on_time.missed.count == 49
    assert on_time.missed.reason is SkipReason.MISSED


def test_run_once_runs_exactly_one_for_all_the_missed() -> None:
    decision = due(downtime("run_once").timing, now_after(50, 3000), previous_run_open=False)
    assert decision.fire == (now_after(50),)
    assert decision.missed is not None and decision.missed.count == 49


def test_run_all_runs_the_latest_up_to_the_limit_and_drops_the_rest() -> None:
    decision = due(downtime("run_all", limit=7).timing, now_after(50, 3000), False)
    assert decision.fire == tuple(now_after(n) for n in range(44, 51))
    assert decision.missed is not None
    assert (decision.missed.first, decision.missed.last) == (T0, now_after(43))
    assert decision.missed.count == 43


def test_a_long_outage_of_a_frequent_cron_job_is_decided_in_bounded_chunks() -> None:
    s = schedule(cron="* * * * *", catchup="run_all", catchup_limit=5, overlap="allow_all")
    now = T0 + timedelta(days=30)  # 43,200 minutes
    decisions = []
    while True:
        decision = due(s.timing, now, previous_run_open=False)
        s.record(decision, ENGINE, now)
        decisions.append(decision)
        if not decision.more:
            break
    assert len(decisions) == 5
    assert all(d.missed is not None and d.missed.count <= MAX_TICKS_PER_DECISION for d in decisions)
    assert s.skipped + s.fired == 43_201 and s.fired == 5
    assert s.last_tick == now


# -- overlap ------------------------------------------------------------------------------


def test_overlap_skip_drops_a_tick_while_the_previous_run_is_open() -> None:
    s = schedule(every_s=60, overlap="skip")
    decision = due(s.timing, T0, previous_run_open=True)
    assert decision.fire == () and decision.overlapped is not None
    assert decision.overlapped.reason is SkipReason.OVERLAP


def test_buffer_one_keeps_one_tick_and_releases_it_when_the_run_finishes() -> None:
    s = schedule(every_s=60, overlap="buffer_one")
    s.record(due(s.timing, T0, previous_run_open=False), ENGINE, T0)
    first = due(s.timing, T0 + timedelta(seconds=60), previous_run_open=True)
    assert first.buffer == T0 + timedelta(seconds=60) and first.fire == ()
    s.record(first, ENGINE, T0 + timedelta(seconds=60))
    full = due(s.timing, T0 + timedelta(seconds=120), previous_run_open=True)
    assert full.buffer is None and full.overlapped is not None  # the buffer holds one only
    s.record(full, ENGINE, T0 + timedelta(seconds=120))
    finished = due(s.timing, T0 + timedelta(seconds=130), previous_run_open=False)
    assert finished.release == T0 + timedelta(seconds=60) and finished.fire == ()
    firings = s.record(finished, ENGINE, T0 + timedelta(seconds=130))
    assert [f.tick for f in firings] == [T0 + timedelta(seconds=60)]
    assert s.buffered is None and s.fired == 2


def test_allow_all_fires_on_top_of_an_open_run() -> None:
    s = schedule(every_s=60, overlap="allow_all")
    assert due(s.timing, T0, previous_run_open=True).fire == (T0,)


def test_a_paused_schedule_decides_nothing_and_resumes_from_the_resume_time() -> None:
    s = schedule(every_s=60, catchup="run_all", catchup_limit=100)
    s.pause(ENGINE, T0)
    assert due(s.timing, T0 + timedelta(hours=1), False).empty
    s.resume(ENGINE, T0 + timedelta(hours=1, seconds=30))
    assert s.next_tick == T0 + timedelta(hours=1, minutes=1)


# -- properties over many decisions ----------------------------------------------------------

STEPS = st.lists(
    st.tuples(st.integers(0, 400), st.booleans()),  # seconds to advance; the open run ends
    min_size=1,
    max_size=40,
)
TRIGGERS = st.one_of(
    st.builds(lambda every: {"every_s": every}, st.integers(1, 300)),
    st.builds(
        lambda expr, zone: {"cron": expr, "timezone": zone},
        st.sampled_from(["* * * * *", "*/5 * * * *", "0 * * * *", "30 2 * * *"]),
        st.sampled_from(ZONES),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    trigger=TRIGGERS,
    overlap=st.sampled_from(list(Overlap)),
    catchup=st.sampled_from(list(Catchup)),
    limit=st.integers(1, 20),
    start=st.datetimes(
        min_value=datetime(2026, 3, 28), max_value=datetime(2026, 3, 30), timezones=st.just(UTC)
    ),
    steps=STEPS,
)
def test_successive_decisions_decide_each_tick_once_and_stay_within_bounds(
    trigger: dict[str, object],
    overlap: Overlap,
    catchup: Catchup,
    limit: int,
    start: datetime,
    steps: list[tuple[int, bool]],
) -> None:
    s = schedule(at=start, overlap=overlap, catchup=catchup, catchup_limit=limit, **trigger)
    now, run_open, fired = start, False, []
    for advance, finishes in steps:
        now += timedelta(seconds=advance)
        run_open = run_open and not finishes
        more = True
        while more:
            before = s.last_tick
            decision = due(s.timing, now, run_open)
            assert len(decision.fire) <= limit
            if catchup is not Catchup.RUN_ALL:
                assert len(decision.fire) <= 1
            if catchup is Catchup.SKIP:
                assert all(now - tick <= MISFIRE_GRACE for tick in decision.fire)
            firings = s.record(decision, ENGINE, now)
            fired.extend(f.tick for f in firings)
            run_open = run_open or bool(firings)
            assert before is None or s.last_tick is None or s.last_tick >= before
            assert s.last_tick is None or s.last_tick <= now
            more = decision.more
        next_tick = s.next_tick
        assert next_tick is None or next_tick > now
    assert fired == sorted(set(fired)), "a tick fired twice or out of order"
    decided = s.fired + s.skipped + (1 if s.buffered is not None else 0)
    if s.last_tick is None:
        assert decided == 0
    else:
        every_tick = s.trigger.due_ticks(s.not_before - INSTANT, s.last_tick, 1, 10**7)
        assert decided == every_tick.count, "a tick was lost or decided twice"


def test_a_decision_replayed_on_the_schedule_it_came_from_is_refused() -> None:
    s = schedule(every_s=60)
    decision = due(s.timing, T0, previous_run_open=False)
    s.record(decision, ENGINE, T0)
    with pytest.raises(Exception, match="forward"):
        s.record(replace(decision), ENGINE, T0)
