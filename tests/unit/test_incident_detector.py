"""The incident detector over a real Hive (in-memory recorder, a fake clock): the model
hears outcomes and losses once, the loop opens an incident with the events' positions as
evidence, updates it only with news, and resolves it once its rule was quiet."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from uuid import UUID

import pytest

from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.incidents import Incident, IncidentState, OpenIncident
from domain.policies.incidents import IncidentConfig
from domain.policies.retry import RetryPolicy
from domain.tasks import Task
from runtime.dispatcher import Dispatcher
from runtime.incidents import IncidentLoop, Incidents
from runtime.live import LiveIndex
from runtime.performance import LivePerformance
from tests.clock import FakeClock

ALICE = Cause("alice", "req")
RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.0, max_backoff_s=0.0, jitter=0.0)
CONFIG = IncidentConfig(window_s=60, quiet_s=30, update_every_s=5, retry_storm=1000)


@dataclass
class Detector:
    clock: FakeClock = field(default_factory=FakeClock)
    health: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=self.clock)
        self.hive.tasks.policies = lambda _: RETRY
        self.index = LiveIndex(clock=self.clock)
        self.model = Incidents(CONFIG, clock=self.clock)
        self.hive.listeners += [self.index.apply, self.model.follow]  # each event once
        self.dispatcher = Dispatcher(self.hive, self.index, LivePerformance(), page=100)
        self.loop = IncidentLoop(
            self.hive,
            self.model,
            clock=self.clock,
            pending=self.index.oldest_pending,
            health=lambda: self.health,
        )

    def bot(self, type_: str) -> UUID:
        bot, _, _ = self.hive.fleet.register(
            name="b", capabilities=[type_], max_concurrency=1, version_label="v1", cause=ALICE
        )
        return bot.id

    def submit(self, type_: str, n: int) -> list[UUID]:
        return [s.task.id for s in self.hive.tasks.submit([TaskSpec(type_)] * n, ALICE).items]

    def fail(self, bot_id: UUID) -> int:
        held = self.index.held_by(bot_id)
        tasks = self.hive.load_many(Task, held)
        reports = [Report(t, tasks[t].fencing_token, error="boom", ran_s=0.1) for t in held]
        if reports:
            self.hive.tasks.finish(bot_id, reports, Cause(f"bot:{bot_id}", "r"))
        return len(reports)

    def incidents(self) -> list[OpenIncident]:
        return self.model.open_incidents()

    def round(self) -> int:
        self.model.calm_until = 0.0
        return self.loop.run_once()


@pytest.fixture
def detector() -> Iterator[Detector]:
    d = Detector()
    yield d
    d.hive.close()


def test_failures_on_three_bots_open_one_cascade_citing_them(detector: Detector) -> None:
    d = detector
    bots = [d.bot(t) for t in ("a", "b", "c")]
    for t in ("a", "b", "c"):
        d.submit(t, 1)
    d.dispatcher.run_once()
    for bot in bots:
        d.fail(bot)
    assert d.round() >= 1
    [cascade] = [i for i in d.incidents() if i.rule == "cascade"]
    assert cascade.subject == "hive" and cascade.severity == "critical"
    incident = d.hive.get(Incident, cascade.incident_id)
    cited = {e["aggregate_id"] for e in incident.evidence}
    retried = {p: e for p, e in _decoded(d.hive) if isinstance(e, Task.RetryScheduled)}
    assert cited == {str(e.originator_id) for e in retried.values()} and len(cited) == 3
    assert {e["event"] for e in incident.evidence} == {"Task.RetryScheduled"}
    for item in incident.evidence:  # each names its event exactly: position, id, version
        event = retried[item["position"]]
        assert item["aggregate_id"] == str(event.originator_id)
        assert item["version"] == event.originator_version
        assert item["bot_id"] == str(event.bot_id)
    assert {e["task_type"] for e in incident.evidence} == {"a", "b", "c"}


def test_lost_bots_open_then_quiet_resolves(detector: Detector) -> None:
    d = detector
    bots = [d.bot("code") for _ in range(2)]
    for bot in bots:
        d.hive.fleet.lose(bot, [], "lease expired", ALICE)
    d.round()
    [lost] = [i for i in d.incidents() if i.rule == "bots-lost"]
    d.clock.advance(5)
    assert d.round() == 0  # nothing new: nothing written
    d.clock.advance(CONFIG.window_s + CONFIG.quiet_s)
    d.round()
    assert d.incidents() == []
    resolved = d.hive.get(Incident, lost.incident_id)
    assert resolved.state == IncidentState.RESOLVED
    [event] = [e for e in d.hive.history(lost.incident_id) if isinstance(e, Incident.Resolved)]
    assert event.automatic and event.actor == "engine:incidents"


def test_news_updates_the_open_incident_no_more_often_than_update_every_s(
    detector: Detector,
) -> None:
    d = detector
    d.model.config = replace(CONFIG, cascade_bots=100)  # three lost bots are a cascade too
    for _ in range(2):
        d.hive.fleet.lose(d.bot("code"), [], "lease expired", ALICE)
    d.round()
    [lost] = d.incidents()
    d.hive.fleet.lose(d.bot("code"), [], "lease expired", ALICE)
    d.clock.advance(1)
    assert d.round() == 0  # written 1 s ago
    d.clock.advance(CONFIG.update_every_s)
    assert d.round() == 1
    incident = d.hive.get(Incident, lost.incident_id)
    assert incident.total == 3 and len(incident.evidence) == 3


def test_the_oldest_pending_task_over_its_slo(detector: Detector) -> None:
    d = detector
    d.model.config = IncidentConfig(pending_age_s=60)
    [task] = d.submit("slow", 1)
    d.round()
    assert d.incidents() == []
    d.clock.advance(61)
    d.round()
    [late] = d.incidents()
    assert (late.rule, late.subject) == ("pending-age", "slow")
    assert d.hive.get(Incident, late.incident_id).evidence[0]["aggregate_id"] == str(task)


def test_a_loop_without_a_leader_for_a_while(detector: Detector) -> None:
    d = detector
    d.health = {"engine": "ok", "leader:dispatcher": "no leader", "leader:reaper": "ok"}
    d.round()
    d.clock.advance(CONFIG.leaderless_s)
    d.round()
    [leaderless] = d.incidents()
    assert (leaderless.rule, leaderless.subject) == ("leaderless", "dispatcher")


def test_a_database_outage_is_an_incident_once_it_is_over(detector: Detector) -> None:
    d = detector
    d.model.database_down()
    d.clock.advance(3)
    d.round()
    assert d.incidents() == []  # while it lasts the log cannot take it
    d.model.database_up()
    assert d.model.wake.is_set()
    d.round()
    [outage] = d.incidents()
    assert (outage.rule, outage.severity) == ("database", "warning")


def test_a_spike_against_the_type_baseline(detector: Detector) -> None:
    d = detector
    d.model.config = IncidentConfig(min_attempts=4, window_s=60, failure_rate=0.5)
    bot = d.bot("code")
    d.submit("code", 4)
    for _ in range(4):
        d.dispatcher.run_once()
        held = d.index.held_by(bot)
        tasks = d.hive.load_many(Task, held)
        d.hive.tasks.finish(
            bot, [Report(t, tasks[t].fencing_token, "1", ran_s=0.1) for t in held], ALICE
        )
    d.round()
    assert d.incidents() == []
    d.submit("code", 4)
    for _ in range(4):
        d.dispatcher.run_once()
        d.fail(bot)
    d.round()
    assert [(i.rule, i.subject) for i in d.incidents()] == [("failure-spike", "code")]


def test_a_restarted_model_knows_the_open_incident_from_its_events(detector: Detector) -> None:
    d = detector
    for _ in range(2):
        d.hive.fleet.lose(d.bot("code"), [], "lease expired", ALICE)
    d.round()
    [lost] = d.incidents()
    again = Incidents(CONFIG, clock=d.clock)
    again.follow(_decoded(d.hive))
    assert [i.incident_id for i in again.open_incidents()] == [lost.incident_id]
    assert again.episode_for("bots-lost", "fleet") == 1
    assert again.episode_for("cascade", "hive") == 1


def _decoded(hive: Hive) -> list[tuple[int, object]]:
    return [
        (n.id, hive.mapper.to_domain_event(n)) for n in hive.recorder.select_notifications(1, 1000)
    ]
