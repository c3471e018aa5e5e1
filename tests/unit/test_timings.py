"""A process's timings: bucketed like the stages, merged by adding, kept per minute for an
hour (a minute leaving the ring still counts in the totals), read back as percentiles."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.histogram import BUCKETS, bucket_of, bucket_range
from projections.timings import ProcessTimings, Timing, merge


class Clock:
    """Unix seconds the test moves."""

    def __init__(self, now: float = 60 * 1_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_request_is_counted_in_its_bucket_by_route_and_status_class() -> None:
    timings = ProcessTimings(Clock())
    timings.request("GET", "/v1/tasks", 200, 0.004)
    timings.request("GET", "/v1/tasks", 204, 0.020)
    timings.request("GET", "/v1/tasks", 404, 0.001)
    got = timings.window(60)
    assert set(got) == {"http:GET /v1/tasks:2xx", "http:GET /v1/tasks:4xx"}
    ok = got["http:GET /v1/tasks:2xx"]
    assert (ok.count, round(ok.sum_s, 6)) == (2, 0.024)
    assert ok.counts[bucket_of(0.004)] == ok.counts[bucket_of(0.020)] == 1
    assert sum(ok.counts) == ok.count


def test_a_method_nobody_routes_is_one_name_whatever_a_client_sends() -> None:
    timings = ProcessTimings(Clock())
    for method in ("BREW", "XYZZY", "PROPFIND"):
        timings.request(method, "<unmatched>", 405, 0.001)
    assert list(timings.window(60)) == ["http:OTHER <unmatched>:4xx"]
    assert timings.window(60)["http:OTHER <unmatched>:4xx"].count == 3


def test_loop_rounds_count_their_cpu_their_items_and_the_busy_ones() -> None:
    timings = ProcessTimings(Clock())
    timings.round("dispatcher", 0.010, 0.008, 12)
    timings.round("dispatcher", 0.002, 0.001, 0)
    timings.saved(0.003, 5)
    timings.page("tasks", 0.001, 40)
    got = timings.window(60)
    d = got["loop:dispatcher"]
    assert (d.count, d.items, d.busy, round(d.cpu_s, 6)) == (2, 12, 1, 0.009)
    assert (got["save"].count, got["save"].items) == (1, 5)
    assert (got["view:tasks"].count, got["view:tasks"].items) == (1, 40)


def test_minutes_roll_over_and_a_window_covers_the_minutes_it_overlaps() -> None:
    clock = Clock()
    timings = ProcessTimings(clock)
    for _ in range(3):
        timings.saved(0.001, 1)
        clock.now += 60
    assert len(timings.minutes(0)) == 3
    assert timings.window(10)["save"].count == 1  # the minute before now overlaps it
    assert timings.window(70)["save"].count == 2
    assert timings.window(3600)["save"].count == 3
    assert set(timings.recent()) == {int(clock.now // 60) - 1}


def test_an_hour_is_kept_and_older_minutes_still_count_in_the_totals() -> None:
    clock = Clock()
    timings = ProcessTimings(clock)
    for _ in range(90):
        timings.saved(0.002, 2)
        clock.now += 60
    timings.saved(0.002, 2)
    assert len(timings.minutes(0)) == 61  # this minute and the hour before it
    assert timings.window(3600)["save"].count == 61
    total = timings.totals()["save"]
    assert (total.count, total.items) == (91, 182)
    assert total.counts[bucket_of(0.002)] == 91


def test_percentiles_come_from_the_buckets() -> None:
    timings = ProcessTimings(Clock())
    for ms in range(1, 101):
        timings.add("x", ms / 1000)
    t = timings.window(60)["x"]
    for q, true in ((0.5, 0.050), (0.99, 0.099)):
        estimate = t.quantile(q)
        assert estimate is not None
        lower, upper = bucket_range(bucket_of(true))
        assert lower <= estimate <= upper
    assert t.p50 is not None and t.p95 is not None and t.p99 is not None
    assert t.p50 <= t.p95 <= t.p99
    assert Timing.empty().p50 is None


samples = st.lists(st.floats(min_value=0, max_value=4000, allow_nan=False), max_size=30)


@settings(max_examples=50)
@given(samples, samples)
def test_merging_two_processes_equals_counting_both_in_one(a: list[float], b: list[float]) -> None:
    one, two, both = (ProcessTimings(Clock()) for _ in range(3))
    for s in a:
        one.add("x", s, 0.5, 1)
        both.add("x", s, 0.5, 1)
    for s in b:
        two.add("x", s, 0.5, 1)
        both.add("x", s, 0.5, 1)
    merged = merge([one.window(60), two.window(60)])
    if not a and not b:
        assert merged == {}
        return
    want, got = both.window(60)["x"], merged["x"]
    assert (got.counts, got.count, got.items, got.busy) == (
        want.counts,
        want.count,
        want.items,
        want.busy,
    )
    assert abs(got.sum_s - want.sum_s) < 1e-6 * max(1.0, want.sum_s)


def test_a_timing_travels_as_json_and_back() -> None:
    timings = ProcessTimings(Clock())
    timings.round("reaper", 0.0005, 0.0004, 0)
    timings.round("reaper", 7200.0, 1.5, 3)  # past the last bound: the overflow bucket
    t = timings.window(60)["loop:reaper"]
    assert t.counts[BUCKETS - 1] == 1
    assert Timing.from_json(t.to_json()) == t
    assert len(t.to_json()["c"]) == 2  # only the buckets that counted


def test_with_profiling_off_nothing_is_counted_until_it_is_on_again() -> None:
    timings = ProcessTimings(Clock())
    timings.enabled = False  # the config's profiling: false
    timings.request("GET", "/v1/tasks", 200, 0.004)
    timings.round("dispatcher", 0.01, 0.01, 5)
    timings.saved(0.002, 3)
    assert timings.window(60) == {}
    timings.enabled = True
    timings.saved(0.002, 3)
    assert set(timings.window(60)) == {"save"}
