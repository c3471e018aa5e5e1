"""The Incident aggregate (given events, when a command, then new events) and its commands
on the in-memory recorder: one id per (rule, subject, episode), bounded evidence."""

from __future__ import annotations

import pytest

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition
from domain.hive import Hive
from domain.incidents import (
    MAX_EVIDENCE,
    Finding,
    Incident,
    IncidentState,
    incident_id,
    kept,
)
from tests.clock import FakeClock

ENGINE = Cause("engine:incidents", "r")
ALICE = Cause("alice", "req")


def evidence(first: int, n: int) -> tuple[dict[str, object], ...]:
    return tuple({"position": p, "event": "Bot.Lost"} for p in range(first, first + n))


def finding(severity: str = "warning", n: int = 2, total: int | None = None) -> Finding:
    return Finding("bots-lost", "fleet", severity, f"{n} bots lost", evidence(1, n), total or n)


def test_the_id_is_the_same_for_the_same_rule_subject_and_episode() -> None:
    assert incident_id("cascade", "hive", 1) == incident_id("cascade", "hive", 1)
    assert incident_id("cascade", "hive", 1) != incident_id("cascade", "hive", 2)
    assert incident_id("cascade", "hive", 1) != incident_id("cascade", "fleet", 1)


def test_report_opens_then_updates_then_escalates(hive: Hive, clock: FakeClock) -> None:
    opened = hive.incidents.report(finding(), 1, ENGINE).items[0]
    assert opened.id == incident_id("bots-lost", "fleet", 1)
    assert (opened.state, opened.severity, opened.total) == (IncidentState.OPEN, "warning", 2)
    clock.advance(5)
    again = hive.incidents.report(finding(n=3), 1, ENGINE)
    [updated] = [type(e).__name__ for _, e in again.recorded]
    assert updated == "Updated" and again.items[0].total == 3
    assert [e["position"] for e in again.items[0].evidence] == [1, 2, 3]
    worse = hive.incidents.report(finding("critical", n=3), 1, ENGINE)
    assert [type(e).__name__ for _, e in worse.recorded] == ["Escalated"]
    assert hive.incidents.report(finding("critical", n=3), 1, ENGINE).recorded == []


def test_a_resolved_episode_moves_the_report_to_the_next(hive: Hive) -> None:
    first = hive.incidents.report(finding(), 1, ENGINE).items[0]
    hive.incidents.resolve(first.id, "fixed the network", ALICE)
    second = hive.incidents.report(finding(), 1, ENGINE).items[0]
    assert second.episode == 2 and second.id == incident_id("bots-lost", "fleet", 2)


def test_ack_then_resolve_by_hand(hive: Hive) -> None:
    i = hive.incidents.report(finding(), 1, ENGINE).items[0]
    acked = hive.incidents.acknowledge(i.id, "looking", ALICE).items[0]
    assert acked.state == IncidentState.ACKNOWLEDGED and acked.note == "looking"
    with pytest.raises(InvalidTransition):
        hive.incidents.acknowledge(i.id, "again", ALICE)
    done = hive.incidents.resolve(i.id, "fixed", ALICE).items[0]
    assert done.resolved
    with pytest.raises(InvalidTransition):
        hive.incidents.resolve(i.id, "twice", ALICE)
    with pytest.raises(InvalidInput):
        hive.incidents.resolve(hive.incidents.report(finding(), 2, ENGINE).items[0].id, " ", ALICE)


def test_settle_is_a_no_op_once_resolved(hive: Hive) -> None:
    i = hive.incidents.report(finding(), 1, ENGINE).items[0]
    hive.incidents.resolve(i.id, "by hand", ALICE)
    assert hive.incidents.settle(i.id, "quiet", ENGINE).recorded == []
    history = [type(e).__name__ for e in hive.history(i.id)]
    assert history == ["Opened", "Resolved"]


def test_evidence_is_bounded_and_never_repeated() -> None:
    first = kept([], list(evidence(1, 80)))
    assert len(first) == MAX_EVIDENCE
    assert kept(first, list(evidence(1, 80))) == []  # full, and nothing past it anyway
    assert kept(list(evidence(1, 3)), list(evidence(1, 5))) == list(evidence(4, 2))


def test_an_unknown_rule_is_refused(hive: Hive) -> None:
    with pytest.raises(InvalidInput):
        hive.incidents.report(Finding("nope", "hive", "warning", "x"), 1, ENGINE)


def test_replay_equals_the_live_incident(hive: Hive) -> None:
    i = hive.incidents.report(finding(), 1, ENGINE).items[0]
    hive.incidents.report(finding("critical", n=4), 1, ENGINE)
    hive.incidents.acknowledge(i.id, "on it", ALICE)
    live = hive.get(Incident, i.id)
    replayed = None
    for e in hive.history(i.id):
        replayed = e.mutate(replayed)
    assert replayed is not None
    assert vars(replayed) == vars(live) | {"_pending_events": replayed._pending_events}
