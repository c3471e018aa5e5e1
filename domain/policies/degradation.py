"""The degradation policy: which mode the hive's open incidents call for, and when to leave.

A pure policy: the mode as recorded, the open incidents, the rules and the time in; one
decision out. Each rule maps an incident's rule name (from a minimum severity up) to a
mode; the highest mode any open incident calls for is *due*.

* **Up at once.** A due mode above the current one is entered now.
* **Down with hysteresis.** A due mode below the current one is entered only once a lower
  mode has been due for ``calm_s`` without a break (``calm_since``: the caller keeps it
  from round to round, as the decision hands it back), so an incident that flaps does not
  flap the hive.
* **An operator's mode holds**: the policy decides nothing until the operator clears it.

What each mode does (shedding, holding work, refusing clients) is the API's and the
engine's (``runtime/degradation_config.py`` says how much); this only says which mode.
Submissions are admitted by ``admit``: in ``degraded``, those below a priority are shed
or deferred, as configured; a batch is all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from uuid import UUID

from domain.incidents import SEVERITIES
from domain.modes import DEGRADED, NORMAL, Cited, rank


class OpenIncident(Protocol):
    """What the policy needs of an open incident (the incident detector hands these)."""

    @property
    def incident_id(self) -> UUID: ...

    @property
    def rule(self) -> str: ...

    @property
    def severity(self) -> str: ...


@dataclass(frozen=True)
class ModeRule:
    """An open incident of ``rule`` at ``severity`` or above calls for ``mode``."""

    rule: str
    mode: str
    severity: str = "warning"

    def matches(self, incident: OpenIncident) -> bool:
        return incident.rule == self.rule and _severity(incident.severity) >= _severity(
            self.severity
        )


@dataclass(frozen=True)
class DegradationRules:
    rules: tuple[ModeRule, ...]
    calm_s: float = 30.0


@dataclass(frozen=True)
class ModeNow:
    """The mode as recorded: what it is, and whether an operator's mode holds."""

    mode: str = NORMAL
    held: bool = False


@dataclass(frozen=True)
class ModeDecision:
    due: str  # what the open incidents call for
    enter: str | None  # the mode to enter now (None: stay)
    reason: str
    incidents: Cited  # the incidents behind ``due``
    calm_since: datetime | None  # since when a lower mode is due (to hand back next round)
    recheck_at: datetime | None  # when the hysteresis may let the hive down


def decide(
    now_mode: ModeNow,
    incidents: Sequence[OpenIncident],
    config: DegradationRules,
    calm_since: datetime | None,
    now: datetime,
) -> ModeDecision:
    due, cited = due_mode(incidents, config.rules)
    said = _reason(due, cited)
    if now_mode.held:
        return ModeDecision(due, None, "an operator's mode holds", cited, None, None)
    if rank(due) > rank(now_mode.mode):
        return ModeDecision(due, due, said, cited, None, None)
    if rank(due) == rank(now_mode.mode):
        return ModeDecision(due, None, said, cited, None, None)
    since = calm_since if calm_since is not None else now
    ends = since + timedelta(seconds=config.calm_s)
    if now >= ends:
        calm = f"{said}; calm for {config.calm_s:g} s" if cited else f"calm for {config.calm_s:g} s"
        return ModeDecision(due, due, calm, cited, None, None)
    return ModeDecision(due, None, "calming down", cited, since, ends)


def due_mode(incidents: Sequence[OpenIncident], rules: Sequence[ModeRule]) -> tuple[str, Cited]:
    """The highest mode the incidents call for, and the incidents that call for it."""
    due, cited = NORMAL, []
    for incident in incidents:
        for rule in rules:
            if not rule.matches(incident):
                continue
            entry = {"incident_id": str(incident.incident_id), "rule": incident.rule}
            if rank(rule.mode) > rank(due):
                due, cited = rule.mode, [entry]
            elif rule.mode == due and entry not in cited:
                cited.append(entry)
    return due, cited


Admission = Literal["accept", "shed", "defer"]


def admit(mode: str, priorities: Sequence[int], below: int, degraded: str) -> Admission:
    """A submission (a batch is all or nothing) in ``mode``: in ``degraded``, any task below
    priority ``below`` makes the whole submission ``degraded``'s answer (shed or defer);
    every other mode accepts it here (critical refuses clients before they get here)."""
    if mode != DEGRADED or all(p >= below for p in priorities):
        return "accept"
    return "defer" if degraded == "defer" else "shed"


def _reason(due: str, cited: Cited) -> str:
    if not cited:
        return "no open incident calls for a mode"
    rules = sorted({c["rule"] for c in cited})
    return f"{due}: open incidents of {', '.join(rules)}"


def _severity(name: str) -> int:
    return SEVERITIES.index(name) if name in SEVERITIES else len(SEVERITIES)


def failing_pool(
    bots: Sequence[tuple[str, datetime | None]], now: datetime, window_s: float
) -> bool:
    """Whether a pool's bots keep failing (``degraded`` launches no more into it): at least
    half of its live bots (``(state, failed_at)`` each: the time of its last failed
    attempt) are quarantined or probing, or failed an attempt in the last ``window_s``. A
    bot lost (killed, cut off) is gone from the pool, not failing: the pool may replace it.
    """
    if not bots:
        return False
    since = now - timedelta(seconds=window_s)
    failing = sum(
        1
        for state, failed_at in bots
        if state in ("quarantined", "probing") or (failed_at is not None and failed_at >= since)
    )
    return 2 * failing >= len(bots)
