"""The degradation policy on synthetic incidents: the highest mode wins, up at once, down
only after ``calm_s`` without a break, an operator's mode holds; and admission."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.incidents import RULES, SEVERITIES
from domain.modes import CRITICAL, DEGRADED, NORMAL, rank
from domain.policies.degradation import (
    DegradationRules,
    ModeNow,
    ModeRule,
    admit,
    decide,
    due_mode,
)
from tests.clock import T0

SPACE = UUID("3b0e0a4e-8f52-4a54-9d0f-5c7f5c1e2d11")
CONFIG = DegradationRules(
    (
        ModeRule("cascade", DEGRADED),
        ModeRule("bots-lost", DEGRADED, "critical"),
        ModeRule("database", CRITICAL),
    ),
    calm_s=30.0,
)


@dataclass(frozen=True)
class Incident:
    incident_id: UUID
    rule: str
    severity: str


def incident(rule: str, severity: str = "warning", n: int = 0) -> Incident:
    return Incident(uuid5(SPACE, f"{rule}-{n}"), rule, severity)


def test_no_incident_calls_for_nothing() -> None:
    d = decide(ModeNow(), [], CONFIG, None, T0)
    assert (d.due, d.enter, d.incidents, d.recheck_at) == (NORMAL, None, [], None)


def test_the_highest_mode_wins_and_cites_its_incidents() -> None:
    found = [incident("cascade"), incident("database"), incident("database", n=1)]
    d = decide(ModeNow(), found, CONFIG, None, T0)
    assert (d.due, d.enter) == (CRITICAL, CRITICAL)
    assert [c["rule"] for c in d.incidents] == ["database", "database"]
    assert d.incidents[0]["incident_id"] == str(found[1].incident_id)


def test_a_rule_counts_from_its_severity_up() -> None:
    assert due_mode([incident("bots-lost", "warning")], CONFIG.rules)[0] == NORMAL
    assert due_mode([incident("bots-lost", "critical")], CONFIG.rules)[0] == DEGRADED
    assert due_mode([incident("view-lag", "critical")], CONFIG.rules)[0] == NORMAL


def test_up_at_once_down_after_calm_without_a_break() -> None:
    now = ModeNow(CRITICAL)
    calm = decide(now, [incident("cascade")], CONFIG, None, T0)
    assert (calm.enter, calm.calm_since, calm.recheck_at) == (
        None,
        T0,
        T0 + timedelta(seconds=30),
    )
    later = decide(now, [], CONFIG, calm.calm_since, T0 + timedelta(seconds=29))
    assert later.enter is None and later.calm_since == T0
    # a break: the higher mode is due again, and the calm starts over
    broken = decide(
        now, [incident("database")], CONFIG, later.calm_since, T0 + timedelta(seconds=29.5)
    )
    assert broken.calm_since is None and broken.enter is None
    again = decide(now, [], CONFIG, broken.calm_since, T0 + timedelta(seconds=40))
    assert again.enter is None and again.calm_since == T0 + timedelta(seconds=40)
    done = decide(now, [], CONFIG, again.calm_since, T0 + timedelta(seconds=70))
    assert (done.enter, done.calm_since) == (NORMAL, None)


def test_an_operators_mode_holds() -> None:
    d = decide(ModeNow("maintenance", held=True), [incident("database")], CONFIG, None, T0)
    assert (d.due, d.enter, d.calm_since) == (CRITICAL, None, None)


incidents = st.lists(
    st.builds(incident, st.sampled_from(RULES), st.sampled_from(SEVERITIES), st.integers(0, 3)),
    max_size=8,
)
modes = st.sampled_from([NORMAL, DEGRADED, CRITICAL])


@settings(max_examples=200, deadline=None)
@given(incidents, modes, st.floats(0, 120))
def test_never_below_what_is_due_at_once_never_up_without_cause(
    found: list[Incident], mode: str, waited: float
) -> None:
    d = decide(ModeNow(mode), found, CONFIG, T0, T0 + timedelta(seconds=waited))
    if rank(d.due) > rank(mode):
        assert d.enter == d.due  # up at once
    elif rank(d.due) < rank(mode):
        assert (d.enter == d.due) == (waited >= CONFIG.calm_s)  # down only when calm
    else:
        assert d.enter is None
    cited = {c["rule"] for c in d.incidents}
    assert all(any(r.rule == c and r.mode == d.due for r in CONFIG.rules) for c in cited)


def test_admission_in_degraded_sheds_or_defers_a_whole_batch() -> None:
    assert admit(NORMAL, [0, 1], 5, "shed") == "accept"
    assert admit("maintenance", [0], 5, "shed") == "accept"
    assert admit(DEGRADED, [5, 9], 5, "shed") == "accept"
    assert admit(DEGRADED, [9, 4], 5, "shed") == "shed"
    assert admit(DEGRADED, [4], 5, "defer") == "defer"
