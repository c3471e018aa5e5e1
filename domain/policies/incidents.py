"""The incident detector's rules, and what to do with the incidents they make.

Pure: what the detector saw over its window (``Observed``, counted by
``runtime/incidents.py``), the thresholds (``IncidentConfig``, the config's ``incidents``
knob) and the time in; findings and actions out. Each rule is one function:

* ``bots-lost`` (subject ``fleet``): bots lost within the window;
* ``failure-spike`` (per type): the failure rate over the window, among at least
  ``min_attempts`` attempts, at least ``failure_rate`` and ``spike_factor`` times the
  type's own baseline (an EWMA of its earlier windows' rates);
* ``retry-storm`` and ``dead-letters`` (per type): retries scheduled, tasks dead-lettered;
* ``pending-age`` (per type): the oldest pending task waited longer than its type's SLO;
* ``view-lag`` (per view): log positions a view has still to read;
* ``database`` (``hive``): an outage of the database, once the log could be written again;
* ``leaderless`` (per loop): a control loop the engines run had no leader for a while;
* ``cascade`` (``hive``): failures or losses spread over at least ``cascade_bots`` bots
  or ``cascade_types`` types within the window; always critical.

A count rule is critical at ``critical_factor`` times its threshold. ``decide`` turns the
findings into actions against the incidents open: report a finding with no incident (to
open one), or one more severe, or with news (at most every ``update_every_s``); settle an
incident whose rule was quiet for ``quiet_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.incidents import (
    BOTS_LOST,
    CASCADE,
    DATABASE,
    DEAD_LETTERS,
    FAILURE_SPIKE,
    FLEET,
    HIVE,
    LEADERLESS,
    PENDING_AGE,
    RETRY_STORM,
    VIEW_LAG,
    Finding,
    Severity,
)

WARNING, CRITICAL = str(Severity.WARNING), str(Severity.CRITICAL)


@dataclass(frozen=True)
class IncidentConfig:
    enabled: bool = True
    window_s: float = 60.0  # what every rule counts over
    quiet_s: float = 120.0  # an incident whose rule was quiet this long is resolved
    update_every_s: float = 10.0  # news of an open incident is written at most this often
    critical_factor: float = 4.0  # a count rule is critical at this many times its threshold
    bots_lost: int = 2
    min_attempts: int = 10
    failure_rate: float = 0.5
    spike_factor: float = 3.0
    baseline_alpha: float = 0.3
    retry_storm: int = 100
    dead_letters: int = 10
    pending_age_s: float = 300.0
    pending_age_by_type: Mapping[str, float] = field(default_factory=dict)
    view_lag: int = 50_000
    database_critical_s: float = 30.0
    leaderless_s: float = 15.0
    cascade_bots: int = 3
    cascade_types: int = 3


@dataclass(frozen=True)
class Counted:
    """Events counted in the window: how many, the first ones as evidence, and (where
    kept) the bots and types they touched."""

    count: int = 0
    evidence: tuple[dict[str, Any], ...] = ()
    bots: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TypeWindow:
    attempts: int = 0  # attempts that ended (succeeded or not)
    failures: Counted = Counted()  # of those, the failures (retried, dead or failed)
    retries: Counted = Counted()
    dead: Counted = Counted()
    baseline: float | None = None  # the failure rate's EWMA over earlier windows


@dataclass(frozen=True)
class Oldest:
    """A type's oldest pending task."""

    age_s: float
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Outage:
    began: datetime
    ended: datetime

    @property
    def seconds(self) -> float:
        return (self.ended - self.began).total_seconds()


@dataclass(frozen=True)
class Observed:
    lost: Counted = Counted()
    types: Mapping[str, TypeWindow] = field(default_factory=dict)
    pending: Mapping[str, Oldest] = field(default_factory=dict)
    view_lag: Mapping[str, int] = field(default_factory=dict)
    outages: tuple[Outage, ...] = ()
    leaderless: Mapping[str, float] = field(default_factory=dict)  # loop -> seconds
    spread: Counted = Counted()  # failures and losses, with the bots and types they touched


def findings(seen: Observed, config: IncidentConfig) -> list[Finding]:
    """Every rule's findings now (none when the detector is disabled)."""
    if not config.enabled:
        return []
    out = [
        *bots_lost(seen.lost, config),
        *cascade(seen.spread, config),
        *database(seen.outages, config),
    ]
    for type_, w in sorted(seen.types.items()):
        out += failure_spike(type_, w, config)
        out += counted(RETRY_STORM, type_, w.retries, config.retry_storm, "retries", config)
        out += counted(DEAD_LETTERS, type_, w.dead, config.dead_letters, "dead letters", config)
    for type_, oldest in sorted(seen.pending.items()):
        out += pending_age(type_, oldest, config)
    for view, lag in sorted(seen.view_lag.items()):
        out += view_lag(view, lag, config)
    for loop, seconds in sorted(seen.leaderless.items()):
        out += leaderless(loop, seconds, config)
    return out


def _severity(value: float, threshold: float, config: IncidentConfig) -> str:
    return CRITICAL if value >= threshold * config.critical_factor else WARNING


def _window(config: IncidentConfig) -> str:
    return f"{config.window_s:g} s"


def bots_lost(lost: Counted, config: IncidentConfig) -> list[Finding]:
    if lost.count < config.bots_lost:
        return []
    summary = f"{lost.count} bots lost within {_window(config)}"
    severity = _severity(lost.count, config.bots_lost, config)
    return [Finding(BOTS_LOST, FLEET, severity, summary, lost.evidence, lost.count)]


def counted(
    rule: str, type_: str, c: Counted, threshold: int, what: str, config: IncidentConfig
) -> list[Finding]:
    """A count rule per type: ``threshold`` events within the window."""
    if c.count < threshold:
        return []
    summary = f"{c.count} {what} of type {type_} within {_window(config)}"
    return [
        Finding(rule, type_, _severity(c.count, threshold, config), summary, c.evidence, c.count)
    ]


def spike_threshold(baseline: float | None, config: IncidentConfig) -> float:
    """The failure rate that is a spike for a type of this baseline."""
    return max(config.failure_rate, config.spike_factor * (baseline or 0.0))


def failure_spike(type_: str, w: TypeWindow, config: IncidentConfig) -> list[Finding]:
    if w.attempts < config.min_attempts or not w.failures.count:
        return []
    rate = w.failures.count / w.attempts
    if rate < spike_threshold(w.baseline, config):
        return []
    severity = CRITICAL if rate >= 0.9 else WARNING
    base = "no baseline" if w.baseline is None else f"baseline {w.baseline:.0%}"
    summary = (
        f"type {type_}: {rate:.0%} of {w.attempts} attempts failed within "
        f"{_window(config)} ({base})"
    )
    return [Finding(FAILURE_SPIKE, type_, severity, summary, w.failures.evidence, w.failures.count)]


def next_baseline(baseline: float | None, rate: float, config: IncidentConfig) -> float:
    """The EWMA after one more window's failure rate."""
    if baseline is None:
        return rate
    return baseline + config.baseline_alpha * (rate - baseline)


def pending_age(type_: str, oldest: Oldest, config: IncidentConfig) -> list[Finding]:
    slo = config.pending_age_by_type.get(type_, config.pending_age_s)
    if oldest.age_s < slo:
        return []
    summary = f"type {type_}: the oldest pending task waited {oldest.age_s:.0f} s (SLO {slo:g} s)"
    severity = _severity(oldest.age_s, slo, config)
    return [Finding(PENDING_AGE, type_, severity, summary, (oldest.evidence,), 1)]


def view_lag(view: str, lag: int, config: IncidentConfig) -> list[Finding]:
    if lag < config.view_lag:
        return []
    summary = f"view {view} is {lag} log positions behind"
    return [Finding(VIEW_LAG, view, _severity(lag, config.view_lag, config), summary, (), lag)]


def database(outages: tuple[Outage, ...], config: IncidentConfig) -> list[Finding]:
    if not outages:
        return []
    longest = max(o.seconds for o in outages)
    severity = CRITICAL if longest >= config.database_critical_s else WARNING
    evidence = tuple(
        {"event": "DatabaseOutage", "at": o.began.isoformat(), "ended": o.ended.isoformat()}
        for o in outages
    )
    summary = f"the database was unreachable for {longest:.1f} s"
    return [Finding(DATABASE, HIVE, severity, summary, evidence, len(outages))]


def leaderless(loop: str, seconds: float, config: IncidentConfig) -> list[Finding]:
    if seconds < config.leaderless_s:
        return []
    summary = f"loop {loop} has had no leader for {seconds:.0f} s"
    return [Finding(LEADERLESS, loop, WARNING, summary, (), 1)]


def cascade(spread: Counted, config: IncidentConfig) -> list[Finding]:
    bots, types = len(spread.bots), len(spread.types)
    if bots < config.cascade_bots and types < config.cascade_types:
        return []
    summary = (
        f"failures and losses spread over {bots} bots and {types} types "
        f"within {_window(config)} ({spread.count} events)"
    )
    return [Finding(CASCADE, HIVE, CRITICAL, summary, spread.evidence, spread.count)]


# -- what to do with them ---------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """An open incident as the detector knows it."""

    incident_id: UUID
    severity: str
    summary: str
    total: int
    written_at: datetime  # its latest event
    fired_at: datetime  # when its rule last fired


@dataclass(frozen=True)
class Report:
    finding: Finding


@dataclass(frozen=True)
class Settle:
    incident_id: UUID
    reason: str


Action = Report | Settle


def decide(
    found: list[Finding],
    open_: Mapping[tuple[str, str], Known],
    config: IncidentConfig,
    now: datetime,
) -> list[Action]:
    """Report what is new (a finding with no open incident, one more severe, or news of
    one not written for ``update_every_s``); settle an incident quiet for ``quiet_s``."""
    out: list[Action] = []
    fired = set()
    for f in found:
        key = (f.rule, f.subject)
        fired.add(key)
        known = open_.get(key)
        if (
            known is None
            or _more_severe(f.severity, known.severity)
            or _news(f, known, config, now)
        ):
            out.append(Report(f))
    for key, known in sorted(open_.items()):
        quiet = (now - known.fired_at).total_seconds()
        if key not in fired and quiet >= config.quiet_s:
            out.append(Settle(known.incident_id, f"quiet for {quiet:.0f} s"))
    return out


def _news(f: Finding, known: Known, config: IncidentConfig, now: datetime) -> bool:
    """Something to add to an open incident, and its last write long enough ago."""
    changed = f.total != known.total or f.summary != known.summary
    return changed and (now - known.written_at).total_seconds() >= config.update_every_s


def _more_severe(severity: str, than: str) -> bool:
    return Severity(severity).rank > Severity(than).rank
