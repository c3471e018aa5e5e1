"""The incident detector's pure rules and decisions, on synthetic windows."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.incidents import Finding
from domain.policies.incidents import (
    Counted,
    IncidentConfig,
    Known,
    Observed,
    Oldest,
    Outage,
    Report,
    Settle,
    TypeWindow,
    decide,
    findings,
    next_baseline,
    spike_threshold,
)
from tests.clock import T0

CONFIG = IncidentConfig()


def items(n: int) -> tuple[dict[str, object], ...]:
    return tuple({"position": i + 1, "event": "Task.RetryScheduled"} for i in range(n))


def rules(seen: Observed, config: IncidentConfig = CONFIG) -> dict[tuple[str, str], Finding]:
    return {(f.rule, f.subject): f for f in findings(seen, config)}


def test_nothing_seen_finds_nothing() -> None:
    assert findings(Observed(), CONFIG) == []


def test_bots_lost_is_warning_then_critical_at_the_factor() -> None:
    two = rules(Observed(lost=Counted(2, items(2))))[("bots-lost", "fleet")]
    assert two.severity == "warning" and two.total == 2 and len(two.evidence) == 2
    eight = rules(Observed(lost=Counted(8)))[("bots-lost", "fleet")]
    assert eight.severity == "critical"
    assert ("bots-lost", "fleet") not in rules(Observed(lost=Counted(1)))


def test_a_failure_spike_needs_enough_attempts_and_a_rate_over_its_baseline() -> None:
    few = TypeWindow(attempts=5, failures=Counted(5))
    assert not rules(Observed(types={"code": few}))
    spike = TypeWindow(attempts=20, failures=Counted(12, items(12)), baseline=0.1)
    found = rules(Observed(types={"code": spike}))[("failure-spike", "code")]
    assert found.total == 12 and "60%" in found.summary and found.severity == "warning"
    usual = TypeWindow(attempts=20, failures=Counted(12), baseline=0.3)  # 3 x 0.3 = 0.9
    assert ("failure-spike", "code") not in rules(Observed(types={"code": usual}))
    everything = TypeWindow(attempts=20, failures=Counted(20), baseline=0.0)
    assert rules(Observed(types={"code": everything}))[("failure-spike", "code")].severity == (
        "critical"
    )


@settings(max_examples=60, deadline=None)
@given(
    baseline=st.one_of(st.none(), st.floats(0, 1)),
    rates=st.lists(st.floats(0, 1), min_size=1, max_size=20),
)
def test_the_baseline_stays_between_the_rates_it_has_seen(
    baseline: float | None, rates: list[float]
) -> None:
    seen = [] if baseline is None else [baseline]
    for rate in rates:
        baseline = next_baseline(baseline, rate, CONFIG)
        seen.append(rate)
        assert min(seen) - 1e-9 <= baseline <= max(seen) + 1e-9
    assert spike_threshold(baseline, CONFIG) >= CONFIG.failure_rate


def test_retry_storms_and_dead_letters_per_type() -> None:
    w = TypeWindow(attempts=500, retries=Counted(150, items(50)), dead=Counted(10, items(10)))
    found = rules(Observed(types={"code": w}))
    assert found[("retry-storm", "code")].total == 150
    assert found[("dead-letters", "code")].severity == "warning"
    assert len(found[("retry-storm", "code")].evidence) == 50


def test_pending_age_over_its_type_slo() -> None:
    config = IncidentConfig(pending_age_by_type={"slow": 3600.0})
    old = Oldest(400.0, {"aggregate_id": "t"})
    found = rules(Observed(pending={"code": old, "slow": old}), config)
    assert ("pending-age", "code") in found and ("pending-age", "slow") not in found
    assert found[("pending-age", "code")].evidence == ({"aggregate_id": "t"},)


def test_view_lag_database_and_leaderless() -> None:
    outage = Outage(T0, T0 + timedelta(seconds=45))
    seen = Observed(
        view_lag={"tasks": 60_000, "fleet": 10},
        outages=(outage,),
        leaderless={"dispatcher": 20.0, "reaper": 2.0},
    )
    found = rules(seen)
    assert set(found) == {("view-lag", "tasks"), ("database", "hive"), ("leaderless", "dispatcher")}
    assert found[("database", "hive")].severity == "critical"  # 45 s >= 30 s
    assert found[("database", "hive")].evidence[0]["ended"] == outage.ended.isoformat()


def test_a_cascade_is_k_bots_or_k_types_and_always_critical() -> None:
    two = Counted(9, items(9), frozenset({"b1", "b2"}), frozenset({"code"}))
    assert ("cascade", "hive") not in rules(Observed(spread=two))
    bots = Counted(9, items(9), frozenset({"b1", "b2", "b3"}), frozenset({"code"}))
    found = rules(Observed(spread=bots))[("cascade", "hive")]
    assert found.severity == "critical" and len(found.evidence) == 9
    types = Counted(3, items(3), frozenset(), frozenset({"a", "b", "c"}))
    assert ("cascade", "hive") in rules(Observed(spread=types))


def test_a_disabled_detector_finds_nothing() -> None:
    assert findings(Observed(lost=Counted(100)), IncidentConfig(enabled=False)) == []


# -- decide ------------------------------------------------------------------------------

LOST = Finding("bots-lost", "fleet", "warning", "2 bots lost", items(2), 2)


def known(**kw: object) -> Known:
    base = dict(
        incident_id=uuid4(),
        severity="warning",
        summary=LOST.summary,
        total=2,
        written_at=T0,
        fired_at=T0,
    )
    return Known(**{**base, **kw})  # type: ignore[arg-type]


def test_a_new_finding_is_reported() -> None:
    assert decide([LOST], {}, CONFIG, T0) == [Report(LOST)]


def test_an_open_incident_with_nothing_new_is_left_alone() -> None:
    assert (
        decide([LOST], {("bots-lost", "fleet"): known()}, CONFIG, T0 + timedelta(seconds=60)) == []
    )


def test_news_is_written_at_most_every_update_every_s() -> None:
    more = Finding("bots-lost", "fleet", "warning", "3 bots lost", items(3), 3)
    open_ = {("bots-lost", "fleet"): known()}
    assert decide([more], open_, CONFIG, T0 + timedelta(seconds=5)) == []
    assert decide([more], open_, CONFIG, T0 + timedelta(seconds=10)) == [Report(more)]


def test_a_more_severe_finding_is_reported_at_once() -> None:
    worse = Finding("bots-lost", "fleet", "critical", "9 bots lost", items(9), 9)
    open_ = {("bots-lost", "fleet"): known()}
    assert decide([worse], open_, CONFIG, T0 + timedelta(seconds=1)) == [Report(worse)]


def test_an_incident_quiet_for_quiet_s_is_settled() -> None:
    k = known()
    open_ = {("bots-lost", "fleet"): k}
    assert decide([], open_, CONFIG, T0 + timedelta(seconds=119)) == []
    [settle] = decide([], open_, CONFIG, T0 + timedelta(seconds=120))
    assert settle == Settle(k.incident_id, "quiet for 120 s")
    assert decide([LOST], open_, CONFIG, T0 + timedelta(seconds=500)) == []  # still firing
