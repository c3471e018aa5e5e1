"""The incident detector, kept by the engine: what the log says of the hive's trouble, and
the loop that records incidents (``domain/policies/incidents.py`` decides).

``Incidents`` is a live model. It hears Task and Bot events once, in log order, from the
feed only (an outcome counted twice would be a spike of its own), and counts them over
sliding windows (``runtime/incident_window.py``): per task type, the attempts that ended,
their failures, the retries and the dead letters; the bots lost; and the failures and
losses with the bots and types they touched (the cascade). A failure's event does not
carry its task's type, so the model keeps each unfinished task's type (from the tasks
view at start, then from submissions and re-drives). It follows the incidents' own
events too, to know which incident is open per (rule, subject) and each one's latest
episode. It hears the process's database gate: an outage is counted once the database
answers again, with when it began and ended.

``IncidentLoop`` (led by one engine) evaluates the rules at most about once a second,
woken by news (a failure, a loss, an incident's event) and at least every interval: it
adds what the model cannot hear in the log (the oldest pending task per type from the
live index, each view's lag, each loop's leader), asks the policy, and records its
decisions through ``hive.incidents``. What it records it applies to the model at once, by
the incident's version: the feed's later copy changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.bots import Bot
from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.incidents import Finding, Incident, OpenIncident
from domain.policies.incidents import (
    Action,
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
)
from domain.tasks import Task
from projections.incident_reads import detector_start
from runtime.incident_window import Window
from runtime.live import LiveTask
from runtime.models import LiveModel

log = logging.getLogger(__name__)

LOOP = "incidents"
MIN_ROUND_S = 1.0  # news wakes the loop at most this often
INCIDENT_EVENTS = (
    Incident.Opened,
    Incident.Updated,
    Incident.Escalated,
    Incident.Acknowledged,
    Incident.Resolved,
)
Key = tuple[str, str]  # (rule, subject)


@dataclass
class TypeTally:
    attempts: Window = field(default_factory=lambda: Window(keep=0))
    failures: Window = field(default_factory=Window)
    retries: Window = field(default_factory=Window)
    dead: Window = field(default_factory=Window)
    baseline: float | None = None  # the failure rate's EWMA over earlier windows
    folded: int = -1  # the window (its index since the epoch) folded into it last

    def windows(self) -> tuple[Window, ...]:
        return (self.attempts, self.failures, self.retries, self.dead)


@dataclass
class Tracked:
    """An incident not resolved, as the detector knows it."""

    incident_id: UUID
    episode: int
    severity: str
    summary: str
    total: int
    opened_at: datetime
    written_at: datetime
    fired_at: datetime
    version: int

    def known(self) -> Known:
        return Known(
            self.incident_id,
            self.severity,
            self.summary,
            self.total,
            self.written_at,
            self.fired_at,
        )


def _second(event: Any) -> int:
    return int(event.timestamp.timestamp())


class Incidents(LiveModel):
    name = "incidents"
    topics = (*event_topics(Task), *event_topics(Bot), *event_topics(Incident))
    handles = frozenset(
        {
            Task.Submitted,
            Task.Redriven,
            Task.Succeeded,
            Task.Failed,
            Task.RetryScheduled,
            Task.DeadLettered,
            Task.Cancelled,
            Bot.Lost,
            *INCIDENT_EVENTS,
        }
    )
    ignores = frozenset(  # no attempt ended, no bot lost: nothing an incident counts
        {
            Task.Assigned,
            Task.Started,
            Task.Unroutable,
            Task.LeaseExpired,
            Bot.Registered,
            Bot.Draining,
            Bot.Quarantined,
            Bot.Probing,
            Bot.Reinstated,
            Bot.Deregistered,
        }
    )
    takes_own_writes = False  # a failure counted twice would make a spike of its own

    def __init__(
        self, config: IncidentConfig | None = None, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.config = config or IncidentConfig()
        self.clock = clock
        self.lock = threading.Lock()
        self.position = 0
        self.tasks_position = 0  # task events up to here are in the snapshot already
        self.incidents_position = 0
        self.types: dict[UUID, str] = {}  # each unfinished task's type
        self.tallies: dict[str, TypeTally] = {}
        self.lost = Window()
        self.spread = Window(spread=True)
        self.tracked: dict[Key, Tracked] = {}
        self.episodes: dict[Key, int] = {}
        self.down_since: datetime | None = None
        self.outages: list[Outage] = []
        self.wake = threading.Event()
        self.news = False  # something the rules count arrived since the last round
        self.calm_until = 0.0  # monotonic: news wakes the loop from then on
        # Told when an incident opens, moves or resolves (the mode manager's loop wakes).
        self.listeners: list[Callable[[], object]] = []
        self._handlers: dict[type, Callable[[int, Any], bool]] = {
            Task.Succeeded: self._succeeded,
            Task.Submitted: self._typed,
            Task.Redriven: self._typed,
            Task.RetryScheduled: self._failed,
            Task.DeadLettered: self._failed,
            Task.Failed: self._failed,
            Task.Cancelled: self._cancelled,
            Bot.Lost: self._lost,
            **dict.fromkeys(INCIDENT_EVENTS, self._incident),
        }

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        start = detector_start(conn)
        with self.lock:
            self.tasks_position = start.tasks_position
            self.incidents_position = start.incidents_position
            self.types = {task_id: type_ for task_id, type_ in start.unfinished}
            self.episodes = {(rule, subject): n for rule, subject, n in start.episodes}
            for row in start.unresolved:
                incident_id, rule, subject, severity, summary, total, opened, updated, v = row
                episode = self.episodes.get((rule, subject), 1)
                self.tracked[(rule, subject)] = Tracked(
                    incident_id, episode, severity, summary, total, opened, updated, updated, v
                )
        return min(start.tasks_position, start.incidents_position)

    # -- the log -----------------------------------------------------------------------

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        """Each event costs a dict lookup and a bucket's count; evidence is built only
        for failures and losses (and only while their second's bucket has room)."""
        stirred = incidents_moved = False
        handlers = self._handlers
        with self.lock:
            for position, event in events:
                handler = handlers.get(type(event))
                if handler is not None and handler(position, event):
                    stirred = True
                    incidents_moved = incidents_moved or isinstance(event, Incident.Event)
        if incidents_moved:
            self._tell()
        if stirred:
            self.news = True
            if time.monotonic() >= self.calm_until:
                self.wake.set()

    def _typed(self, position: int, e: Any) -> bool:
        if position > self.tasks_position:
            self.types[e.originator_id] = e.type
        return False

    def _cancelled(self, position: int, e: Any) -> bool:
        self.types.pop(e.originator_id, None)
        return False

    def _tally(self, type_: str) -> TypeTally:
        tally = self.tallies.get(type_)
        if tally is None:
            tally = self.tallies[type_] = TypeTally()
        return tally

    def _succeeded(self, position: int, e: Any) -> bool:
        if position <= self.tasks_position:
            return False
        type_ = self.types.pop(e.originator_id, None)
        if type_ is not None:
            self._tally(type_).attempts.add(_second(e))
        return False

    def _failed(self, position: int, e: Any) -> bool:
        if position <= self.tasks_position:
            return False
        retried = isinstance(e, Task.RetryScheduled)
        task_id = e.originator_id
        type_ = self.types.get(task_id) if retried else self.types.pop(task_id, None)
        second = _second(e)
        bot_id = getattr(e, "bot_id", None)  # a failure that is not retryable names none
        if type_ is not None:
            tally = self._tally(type_)
            tally.attempts.add(second)
            tally.failures.add(second, position, e, type_, bot_id)
            if retried:
                tally.retries.add(second, position, e, type_, bot_id)
            elif isinstance(e, Task.DeadLettered):
                tally.dead.add(second, position, e, type_, bot_id)
        self.spread.add(second, position, e, type_, bot_id)
        return True

    def _lost(self, position: int, e: Any) -> bool:
        second = _second(e)
        self.lost.add(second, position, e, None, e.originator_id)
        self.spread.add(second, position, e, None, e.originator_id)
        return True

    def _incident(self, position: int, e: Any) -> bool:
        if position <= self.incidents_position:
            return False
        if isinstance(e, Incident.Opened):
            key = (e.rule, e.subject)
            self.episodes[key] = max(self.episodes.get(key, 0), e.episode)
            t = self.tracked.get(key)
            if t is None or t.episode < e.episode:
                self.tracked[key] = Tracked(
                    e.originator_id,
                    e.episode,
                    e.severity,
                    e.summary,
                    e.total,
                    e.timestamp,
                    e.timestamp,
                    e.timestamp,
                    e.originator_version,
                )
            return True
        for key, t in self.tracked.items():
            if t.incident_id == e.originator_id:
                if e.originator_version > t.version:
                    self._moved(key, t, e)
                return True
        return False

    def _moved(self, key: Key, t: Tracked, e: Any) -> None:
        t.version = e.originator_version
        match e:
            case Incident.Resolved():
                del self.tracked[key]
            case Incident.Updated():
                t.summary, t.total = e.summary, e.total
                t.written_at = t.fired_at = max(t.fired_at, e.timestamp)
            case Incident.Escalated():
                t.severity, t.summary = e.severity, e.summary
                t.written_at = t.fired_at = max(t.fired_at, e.timestamp)

    # -- the database gate ---------------------------------------------------------------

    def database_down(self) -> None:
        with self.lock:
            if self.down_since is None:
                self.down_since = self.clock()

    def database_up(self) -> None:
        with self.lock:
            if self.down_since is None:
                return
            self.outages.append(Outage(self.down_since, self.clock()))
            self.down_since = None
        self.news = True
        self.wake.set()

    # -- what the loop reads -------------------------------------------------------------

    def observe(
        self,
        now: datetime,
        pending: Mapping[str, LiveTask] | None = None,
        view_lag: Mapping[str, int] | None = None,
        leaderless: Mapping[str, float] | None = None,
    ) -> Observed:
        """The windows as they stand at ``now`` (older buckets forgotten first), with
        what the caller adds from outside the log."""
        window_s = self.config.window_s
        now_s = now.timestamp()
        with self.lock:
            for w in (self.lost, self.spread):
                w.prune(now_s, window_s)
            types: dict[str, TypeWindow] = {}
            for type_, tally in self.tallies.items():
                for w in tally.windows():
                    w.prune(now_s, window_s)
                if tally.attempts or tally.retries or tally.dead:
                    types[type_] = TypeWindow(
                        tally.attempts.count,
                        tally.failures.counted(),
                        tally.retries.counted(),
                        tally.dead.counted(),
                        tally.baseline,
                    )
            self.outages = [o for o in self.outages if (now - o.ended).total_seconds() < window_s]
            outages = tuple(self.outages)
            lost, spread = self.lost.counted(), self.spread.counted()
        return Observed(
            lost=lost,
            types=types,
            pending={t: _oldest(task, now_s) for t, task in (pending or {}).items()},
            view_lag=view_lag or {},
            outages=outages,
            leaderless=leaderless or {},
            spread=spread,
        )

    def fold(self, now: datetime) -> None:
        """At each window's end, each type's failure rate over it joins its baseline
        (when it had ``min_attempts``)."""
        config = self.config
        index = int(now.timestamp() // config.window_s)
        with self.lock:
            for tally in self.tallies.values():
                if index <= tally.folded:
                    continue
                attempts = tally.attempts.count
                if tally.folded >= 0 and attempts >= config.min_attempts:
                    rate = tally.failures.count / attempts
                    tally.baseline = next_baseline(tally.baseline, rate, config)
                tally.folded = index

    def fired(self, found: Iterable[Finding], now: datetime) -> None:
        with self.lock:
            for f in found:
                t = self.tracked.get((f.rule, f.subject))
                if t is not None:
                    t.fired_at = now

    def known(self) -> dict[Key, Known]:
        with self.lock:
            return {key: t.known() for key, t in self.tracked.items()}

    def episode_for(self, rule: str, subject: str) -> int:
        """The open incident's episode, or the one after the latest."""
        with self.lock:
            t = self.tracked.get((rule, subject))
            if t is not None:
                return t.episode
            return self.episodes.get((rule, subject), 0) + 1

    def recorded(self, incident: Incident, now: datetime) -> None:
        """What the loop recorded, applied at once (by version)."""
        key = (incident.rule, incident.subject)
        with self.lock:
            self.episodes[key] = max(self.episodes.get(key, 0), incident.episode)
            t = self.tracked.get(key)
            if t is not None and (t.incident_id != incident.id or incident.version <= t.version):
                if t.incident_id != incident.id and t.episode < incident.episode:
                    t = None  # ours is newer: it replaces the one we knew
                else:
                    return
            if incident.resolved:
                self.tracked.pop(key, None)
            else:
                self.tracked[key] = Tracked(
                    incident.id,
                    incident.episode,
                    incident.severity,
                    incident.summary,
                    incident.total,
                    incident.opened_at,
                    incident.updated_at,
                    now,
                    incident.version,
                )
        self._tell()

    def _tell(self) -> None:
        for listener in self.listeners:
            listener()

    def open_incidents(self) -> list[OpenIncident]:
        """The incidents not resolved, oldest first (for the mode manager)."""
        with self.lock:
            tracked = [(key, t) for key, t in self.tracked.items()]
        return sorted(
            (
                OpenIncident(t.incident_id, rule, subject, t.severity, t.opened_at)
                for (rule, subject), t in tracked
            ),
            key=lambda o: o.opened_at,
        )


def _oldest(task: LiveTask, now_s: float) -> Oldest:
    item = {
        "position": task.seq,
        "aggregate_id": str(task.task_id),
        "version": task.version,
        "event": "Task.Pending",
        "at": datetime.fromtimestamp(task.since, tz=UTC).isoformat(),
        "task_type": task.type,
    }
    return Oldest(max(now_s - task.since, 0.0), item)


class IncidentLoop:
    """Evaluates the rules and records what changed; woken by news, at most every
    ``MIN_ROUND_S``, and every interval (an incident's quiet is noticed so)."""

    def __init__(
        self,
        hive: Hive,
        incidents: Incidents,
        *,
        clock: Callable[[], datetime] = utc_now,
        pending: Callable[[], Mapping[str, LiveTask]] = dict,
        view_lag: Callable[[], Mapping[str, int]] = dict,
        health: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.hive, self.incidents, self.clock = hive, incidents, clock
        self.pending, self.view_lag, self.health = pending, view_lag, health
        self.wake = incidents.wake
        self.leaderless_since: dict[str, datetime] = {}

    def run_once(self) -> int:
        model = self.incidents
        self.wake.clear()
        model.news = False
        model.calm_until = time.monotonic() + MIN_ROUND_S
        now = self.clock()
        seen = model.observe(now, self.pending(), self.view_lag(), self._leaderless(now))
        found = findings(seen, model.config)
        model.fired(found, now)
        actions = decide(found, model.known(), model.config, now)
        model.fold(now)
        return sum(self._record(a, now) for a in actions)

    def wait_hint(self) -> float | None:
        """News held back by the pace: the seconds until the next round may take it."""
        if not self.incidents.news:
            return None
        return max(self.incidents.calm_until - time.monotonic(), 0.0)

    def _leaderless(self, now: datetime) -> dict[str, float]:
        checks = self.health()
        without = {
            k.removeprefix("leader:")
            for k, v in checks.items()
            if k.startswith("leader:") and v != "ok"
        }
        for loop in list(self.leaderless_since):
            if loop not in without:
                del self.leaderless_since[loop]
        for loop in without:
            self.leaderless_since.setdefault(loop, now)
        return {
            loop: (now - since).total_seconds() for loop, since in self.leaderless_since.items()
        }

    def _record(self, action: Action, now: datetime) -> int:
        cause = Cause.engine(LOOP, f"incident-{uuid.uuid4().hex[:12]}")
        commands = self.hive.incidents
        match action:
            case Report(finding=f):
                episode = self.incidents.episode_for(f.rule, f.subject)
                committed = commands.report(f, episode, cause)
            case Settle(incident_id=incident_id, reason=reason):
                committed = commands.settle(incident_id, reason, cause)
        for incident in committed.items:
            self.incidents.recorded(incident, now)
        for _, event in committed.recorded:
            action_name = f"incident_{type(event).__name__.lower()}"
            log.info(
                "incident: %s",
                action_name,
                extra={
                    "action": action_name,
                    "incident_id": str(event.originator_id),
                    "rule": getattr(event, "rule", None) or _rule_of(committed.items),
                    "severity": getattr(event, "severity", None),
                },
            )
        return len(committed.recorded)


def _rule_of(items: list[Incident]) -> str | None:
    return items[0].rule if items else None
