"""An incident: the hive's own trouble, said once, with the events that show it.

The detector (``runtime/incidents.py``) opens one when a rule fires for a subject (a task
type, a view, a loop, or ``hive`` / ``fleet``), with a severity, a summary and evidence:
the log positions and ids of the events that tripped it. While the rule keeps firing the
incident is updated (more evidence, a new summary) or escalated (its severity up); an
operator may acknowledge it (with a note); it is resolved by the detector once the rule
has been quiet for a while, or by an operator (with a reason).

Exactly one incident per (rule, subject) is open at a time, across engines: its id is
``incident_id(rule, subject, episode)``, the episode counting that pair's incidents. Two
engines opening the same episode write version 1 of the same id; the log takes one and
refuses the other, which then finds the open one and updates it.

Evidence is bounded: at most ``MAX_EVIDENCE`` items are kept (the first ones), and
``total`` counts every event the rule saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, get_args
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition

NAMESPACE = UUID("5d0c8f7e-2b4a-4c61-9a7e-3f1d6b8e0c42")
MAX_EVIDENCE = 50
MAX_TEXT = 500

# The rules (a vocabulary shared with the mode manager: keep these names exactly).
BOTS_LOST = "bots-lost"
FAILURE_SPIKE = "failure-spike"
RETRY_STORM = "retry-storm"
DEAD_LETTERS = "dead-letters"
PENDING_AGE = "pending-age"
VIEW_LAG = "view-lag"
DATABASE = "database"
LEADERLESS = "leaderless"
CASCADE = "cascade"
RuleName = Literal[  # the one list of rule names: the config, the API and the CLI take it
    "bots-lost",
    "failure-spike",
    "retry-storm",
    "dead-letters",
    "pending-age",
    "view-lag",
    "database",
    "leaderless",
    "cascade",
]
RULES: tuple[str, ...] = get_args(RuleName)
HIVE = "hive"  # the subject of hive-wide rules
FLEET = "fleet"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self)


SEVERITIES = (Severity.WARNING, Severity.CRITICAL)


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def incident_id(rule: str, subject: str, episode: int) -> UUID:
    """The one id the ``episode``-th incident of (rule, subject) has, whoever opens it."""
    return uuid5(NAMESPACE, f"{rule}\x1f{subject}\x1f{episode}")


@dataclass(frozen=True)
class Finding:
    """A rule firing for a subject now: what an incident is opened or updated with."""

    rule: str
    subject: str
    severity: str
    summary: str
    evidence: tuple[dict[str, Any], ...] = ()
    total: int = 0  # events the rule counted (the evidence names the first of them)


class EpisodeOver(InvalidTransition):
    """That episode's incident is resolved: a new one is the next episode."""


@dataclass(frozen=True)
class OpenIncident:
    """An incident not resolved yet, as the mode manager reads them."""

    incident_id: UUID
    rule: str
    subject: str
    severity: str
    opened_at: datetime


def kept(evidence: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of ``new`` evidence, what joins ``evidence``: items past its last position (a
    repeat names nothing new), up to ``MAX_EVIDENCE`` in all."""
    last = max((e.get("position") or 0 for e in evidence), default=0)
    room = MAX_EVIDENCE - len(evidence)
    fresh = [e for e in new if (e.get("position") or 0) > last or e.get("position") is None]
    if any(e.get("position") is None for e in evidence):  # items without a position: by value
        fresh = [e for e in fresh if e not in evidence]
    return fresh[: max(room, 0)]


class Incident(HiveAggregate):
    class Opened(HiveAggregate.Created):
        rule: str
        subject: str
        episode: int
        severity: str
        summary: str
        evidence: list[dict[str, Any]]
        total: int  # events the rule counted (the evidence keeps the first of them)

    class Updated(HiveAggregate.Event):
        summary: str
        evidence: list[dict[str, Any]]  # the items added
        total: int

        def apply(self, incident: Incident) -> None:
            incident.summary, incident.total = self.summary, self.total
            incident.evidence = [*incident.evidence, *self.evidence]
            incident.updated_at = self.timestamp

    class Escalated(HiveAggregate.Event):
        severity: str
        summary: str

        def apply(self, incident: Incident) -> None:
            incident.severity, incident.summary = self.severity, self.summary
            incident.updated_at = self.timestamp

    class Acknowledged(HiveAggregate.Event):
        note: str

        def apply(self, incident: Incident) -> None:
            incident.state = IncidentState.ACKNOWLEDGED
            incident.note = self.note

    class Resolved(HiveAggregate.Event):
        reason: str
        automatic: bool  # by the detector, after its rule was quiet

        def apply(self, incident: Incident) -> None:
            incident.state = IncidentState.RESOLVED
            incident.resolved_at = self.timestamp

    def __init__(
        self,
        rule: str,
        subject: str,
        episode: int,
        severity: str,
        summary: str,
        evidence: list[dict[str, Any]],
        total: int,
    ) -> None:
        self.rule, self.subject, self.episode = rule, subject, episode
        self.severity, self.summary = severity, summary
        self.evidence, self.total = list(evidence), total
        self.state = IncidentState.OPEN
        self.note: str | None = None
        self.opened_at: datetime = self.created_on
        self.updated_at: datetime = self.created_on
        self.resolved_at: datetime | None = None

    @property
    def resolved(self) -> bool:
        return self.state == IncidentState.RESOLVED

    @classmethod
    def open(
        cls,
        rule: str,
        subject: str,
        episode: int,
        severity: str,
        summary: str,
        evidence: list[dict[str, Any]],
        total: int,
        cause: Cause,
        at: datetime,
    ) -> Incident:
        if rule not in RULES:
            raise InvalidInput(f"no rule {rule!r}", field="rule")
        _check_text("subject", subject)
        _check_text("summary", summary)
        return cls._open(
            cls.Opened,
            id=incident_id(rule, subject, episode),
            cause=cause,
            at=at,
            rule=rule,
            subject=subject,
            episode=episode,
            severity=str(Severity(severity)),
            summary=summary,
            evidence=kept([], evidence),
            total=total,
        )

    def update(
        self, summary: str, evidence: list[dict[str, Any]], total: int, cause: Cause, at: datetime
    ) -> None:
        """More evidence or a new summary; nothing when neither changed."""
        self._check_unresolved("updated")
        _check_text("summary", summary)
        added = kept(self.evidence, evidence)
        if not added and summary == self.summary and total == self.total:
            return
        self._record(self.Updated, cause, at, summary=summary, evidence=added, total=total)

    def escalate(self, severity: str, summary: str, cause: Cause, at: datetime) -> None:
        """Its severity up; nothing when it is that severe already (never down)."""
        self._check_unresolved("escalated")
        wanted = Severity(severity)
        if wanted.rank <= Severity(self.severity).rank:
            return
        _check_text("summary", summary)
        self._record(self.Escalated, cause, at, severity=str(wanted), summary=summary)

    def acknowledge(self, note: str, cause: Cause, at: datetime) -> None:
        self._check_unresolved("acknowledged")
        _check_text("note", note)
        if self.state == IncidentState.ACKNOWLEDGED:
            raise InvalidTransition(f"incident {self.id} is acknowledged already", id=self.id)
        self._record(self.Acknowledged, cause, at, note=note)

    def resolve(self, reason: str, cause: Cause, at: datetime, *, automatic: bool) -> None:
        self._check_unresolved("resolved")
        _check_text("reason", reason)
        self._record(self.Resolved, cause, at, reason=reason, automatic=automatic)

    def _check_unresolved(self, what: str) -> None:
        if self.resolved:
            raise InvalidTransition(
                f"incident {self.id} is resolved: it cannot be {what}", id=self.id
            )


def _check_text(name: str, value: str) -> None:
    if not value.strip() or len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidInput(f"{name}: 1..{MAX_TEXT} characters, no NUL", field=name)
