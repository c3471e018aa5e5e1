"""The incidents' commands: what the detector reports, and an operator's ack and resolve.

``report`` is the detector's one command: it opens the (rule, subject)'s incident of the
given episode, or, when that one is open already (another engine opened it first: the
log refused our version 1 and the kernel decided again from the log), updates and
escalates it. A resolved episode moves on to the next one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cause import Cause
from domain.errors import ConcurrentUpdate
from domain.hive.kernel import Committed, Kernel
from domain.incidents import EpisodeOver, Finding, Incident, incident_id

MAX_EPISODES_SKIPPED = 8  # episodes a report moves past (resolved ones it did not know of)


class IncidentCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def report(self, finding: Finding, episode: int, cause: Cause) -> Committed[Incident]:
        """Open ``finding``'s incident as episode ``episode`` (or the first episode after
        it not resolved yet); an open one is updated and escalated instead. Nothing is
        written when the open one already says all of it."""
        for n in range(episode, episode + MAX_EPISODES_SKIPPED):
            try:
                return self._report(finding, n, cause)
            except EpisodeOver:
                continue
        raise ConcurrentUpdate(f"no open episode of {finding.rule} {finding.subject}")

    def _report(self, f: Finding, episode: int, cause: Cause) -> Committed[Incident]:
        key = incident_id(f.rule, f.subject, episode)
        evidence = list(f.evidence)

        def decide(found: dict[UUID, Any], at: datetime) -> list[Incident]:
            incident = found.get(key)
            if incident is None:
                opened = Incident.open(
                    f.rule, f.subject, episode, f.severity, f.summary, evidence, f.total, cause, at
                )
                return [opened]
            if incident.resolved:
                raise EpisodeOver(f"incident {key} is resolved", id=key)
            incident.escalate(f.severity, f.summary, cause, at)
            incident.update(f.summary, evidence, f.total, cause, at)
            return [incident] if incident.pending_events else []

        return self.kernel.execute([key], decide)

    def acknowledge(self, incident_id: UUID, note: str, cause: Cause) -> Committed[Incident]:
        return self.kernel.change(
            Incident, [incident_id], lambda i, at: i.acknowledge(note, cause, at)
        )

    def resolve(self, incident_id: UUID, reason: str, cause: Cause) -> Committed[Incident]:
        """An operator's resolution (an incident resolved already is refused: 409)."""
        return self.kernel.change(
            Incident, [incident_id], lambda i, at: i.resolve(reason, cause, at, automatic=False)
        )

    def settle(self, incident_id: UUID, reason: str, cause: Cause) -> Committed[Incident]:
        """The detector's resolution after its rule was quiet: a no-op when someone
        resolved it already."""

        def decide(found: dict[UUID, Any], at: datetime) -> list[Incident]:
            incident = found.get(incident_id)
            if not isinstance(incident, Incident) or incident.resolved:
                return []
            incident.resolve(reason, cause, at, automatic=True)
            return [incident]

        return self.kernel.execute([incident_id], decide)

    def get(self, incident_id: UUID) -> Incident:
        return self.kernel.get(Incident, incident_id)
