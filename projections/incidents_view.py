"""The incidents view: each incident as it stands, and its timeline (one row per event).

Incidents are few and their events fewer (an update is written at most every few
seconds), so each event is one statement or two; the evidence grows by the items each
update adds (``jsonb ||``), bounded by the aggregate (``domain/incidents.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from domain.aggregate import event_topics
from domain.incidents import Incident, IncidentState
from projections.runner import Positioned
from store.migrations import Migration

INCIDENT_MIGRATIONS = [
    Migration(
        240,
        "views: incidents and their timelines",
        """
        CREATE TABLE IF NOT EXISTS incidents_view (
            incident_id uuid PRIMARY KEY,
            seq bigint NOT NULL,
            rule text NOT NULL,
            subject text NOT NULL,
            episode integer NOT NULL,
            state text NOT NULL,
            severity text NOT NULL,
            summary text NOT NULL,
            evidence jsonb NOT NULL,
            total bigint NOT NULL,
            note text,
            opened_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            acknowledged_at timestamptz,
            acknowledged_by text,
            resolved_at timestamptz,
            resolved_by text,
            resolution text,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS incidents_view_seq ON incidents_view (seq);
        CREATE INDEX IF NOT EXISTS incidents_view_unresolved ON incidents_view (rule, subject)
            WHERE state <> 'resolved';
        CREATE TABLE IF NOT EXISTS incident_timeline (
            incident_id uuid NOT NULL,
            version integer NOT NULL,
            position bigint NOT NULL,
            event text NOT NULL,
            actor text NOT NULL,
            at timestamptz NOT NULL,
            detail jsonb NOT NULL,
            PRIMARY KEY (incident_id, version)
        );
        """,
    ),
]

OPENED = (
    "INSERT INTO incidents_view (incident_id, seq, rule, subject, episode, state, severity, "
    "summary, evidence, total, opened_at, updated_at, version, position) VALUES "
    "(%(id)s, %(position)s, %(rule)s, %(subject)s, %(episode)s, 'open', %(severity)s, "
    "%(summary)s, %(evidence)s::jsonb, %(total)s, %(at)s, %(at)s, %(version)s, %(position)s) "
    "ON CONFLICT (incident_id) DO NOTHING"
)
_MOVED = "version = %(version)s, position = %(position)s"
_WHERE = "WHERE incident_id = %(id)s AND version < %(version)s"
UPDATED = (
    "UPDATE incidents_view SET summary = %(summary)s, evidence = evidence || %(evidence)s::jsonb, "
    f"total = %(total)s, updated_at = %(at)s, {_MOVED} {_WHERE}"
)
ESCALATED = (
    "UPDATE incidents_view SET severity = %(severity)s, summary = %(summary)s, "
    f"updated_at = %(at)s, {_MOVED} {_WHERE}"
)
ACKNOWLEDGED = (
    "UPDATE incidents_view SET state = 'acknowledged', note = %(note)s, "
    f"acknowledged_at = %(at)s, acknowledged_by = %(actor)s, {_MOVED} {_WHERE}"
)
RESOLVED = (
    "UPDATE incidents_view SET state = 'resolved', resolved_at = %(at)s, "
    f"resolved_by = %(actor)s, resolution = %(reason)s, {_MOVED} {_WHERE}"
)
TIMELINE = (
    "INSERT INTO incident_timeline (incident_id, version, position, event, actor, at, detail) "
    "VALUES (%(id)s, %(version)s, %(position)s, %(event)s, %(actor)s, %(at)s, %(detail)s::jsonb) "
    "ON CONFLICT DO NOTHING"
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def change_of(e: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """An event's statement, its fields, and what its timeline row says of it."""
    match e:
        case Incident.Opened():
            fields = {
                "rule": e.rule,
                "subject": e.subject,
                "episode": e.episode,
                "severity": e.severity,
                "summary": e.summary,
                "evidence": _json(e.evidence),
                "total": e.total,
            }
            detail = {"severity": e.severity, "summary": e.summary, "evidence": len(e.evidence)}
            return OPENED, fields, detail
        case Incident.Updated():
            fields = {"summary": e.summary, "evidence": _json(e.evidence), "total": e.total}
            return UPDATED, fields, {"summary": e.summary, "evidence": len(e.evidence)}
        case Incident.Escalated():
            fields = {"severity": e.severity, "summary": e.summary}
            return ESCALATED, fields, fields
        case Incident.Acknowledged():
            return ACKNOWLEDGED, {"note": e.note}, {"note": e.note}
        case Incident.Resolved():
            detail = {"reason": e.reason, "automatic": e.automatic}
            return RESOLVED, {"reason": e.reason}, detail
    raise TypeError(f"not an incident's event: {type(e).__name__}")


class IncidentsView:
    name = "incidents"
    tables: tuple[str, ...] = ("incidents_view", "incident_timeline")
    topics: tuple[str, ...] = event_topics(Incident)
    handles: frozenset[type] = frozenset(
        {
            Incident.Opened,
            Incident.Updated,
            Incident.Escalated,
            Incident.Acknowledged,
            Incident.Resolved,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        for p in events:
            e = p.event
            statement, fields, detail = change_of(e)
            common = {
                "id": e.originator_id,
                "version": e.originator_version,
                "position": p.position,
                "actor": e.actor,
                "at": e.timestamp,
            }
            cur.execute(statement, {**common, **fields})
            event = type(e).__name__.lower()
            cur.execute(TIMELINE, {**common, "event": event, "detail": _json(detail)})


STATES = tuple(str(s) for s in IncidentState)
