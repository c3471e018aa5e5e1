"""The fleet view: one row per bot that ever registered, with its current state and its
circuit breaker's (``breaker``: closed, open or half-open; the last trip's evidence, the
cooldown, when the breaker lets it probe; ``state_by``: who made the last change)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from domain.aggregate import event_topics
from domain.bots import Bot
from projections.runner import Positioned
from store.migrations import Migration

BREAKER_MIGRATIONS = [
    Migration(
        220,
        "views: each bot's circuit breaker (its state, evidence, cooldown) and who changed it",
        """
        ALTER TABLE public.fleet_view
            ADD COLUMN IF NOT EXISTS state_by text,
            ADD COLUMN IF NOT EXISTS breaker text NOT NULL DEFAULT 'closed',
            ADD COLUMN IF NOT EXISTS breaker_evidence jsonb,
            ADD COLUMN IF NOT EXISTS breaker_cooldown_s double precision,
            ADD COLUMN IF NOT EXISTS breaker_tripped_at timestamptz,
            ADD COLUMN IF NOT EXISTS breaker_probe_at timestamptz;
        """,
    ),
]

INSERT = (
    "INSERT INTO fleet_view (bot_id, name, capabilities, max_concurrency, version_label, "
    "pool, launch_id, takes_messages, state, registered_at, version, position) VALUES "
    "(%(bot_id)s, %(name)s, %(capabilities)s, %(max_concurrency)s, %(version_label)s, "
    "%(pool)s, %(launch_id)s, %(takes_messages)s, 'ready', %(at)s, %(version)s, "
    "%(position)s) ON CONFLICT (bot_id) DO NOTHING"
)
STATE = (
    "UPDATE fleet_view SET state = %(state)s, state_reason = %(reason)s, state_by = %(by)s, "
    "breaker = %(breaker)s, version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)
TRIPPED = (
    "UPDATE fleet_view SET state = 'quarantined', state_reason = %(reason)s, "
    "state_by = %(by)s, breaker = 'open', breaker_evidence = %(evidence)s, "
    "breaker_cooldown_s = %(cooldown_s)s, breaker_tripped_at = %(at)s, "
    "breaker_probe_at = %(probe_at)s, version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)
LOST = (
    "UPDATE fleet_view SET state = 'lost', lost_at = %(at)s, lost_reason = %(reason)s, "
    "breaker = 'closed', version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)
DEREGISTERED = (
    "UPDATE fleet_view SET state = 'deregistered', deregistered_at = %(at)s, "
    "breaker = 'closed', version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)


class FleetView:
    name = "fleet"
    tables: tuple[str, ...] = ("fleet_view",)
    topics: tuple[str, ...] = event_topics(Bot)
    handles: frozenset[type] = frozenset(
        {
            Bot.Registered,
            Bot.Draining,
            Bot.Quarantined,
            Bot.Probing,
            Bot.Reinstated,
            Bot.Lost,
            Bot.Deregistered,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        for p in events:
            e = p.event
            common = {
                "bot_id": e.originator_id,
                "at": e.timestamp,
                "version": e.originator_version,
                "position": p.position,
            }
            changed = {**common, "by": e.actor, "breaker": "closed"}
            match e:
                case Bot.Registered():
                    cur.execute(
                        INSERT,
                        {
                            **common,
                            "name": e.name,
                            "capabilities": e.capabilities,
                            "max_concurrency": e.max_concurrency,
                            "version_label": e.version_label,
                            "pool": e.pool,
                            "launch_id": e.launch_id,
                            "takes_messages": e.takes_messages,
                        },
                    )
                case Bot.Draining():
                    cur.execute(STATE, {**changed, "state": "draining", "reason": e.reason})
                case Bot.Quarantined() if e.cooldown_s is None:  # by hand
                    cur.execute(STATE, {**changed, "state": "quarantined", "reason": e.reason})
                case Bot.Quarantined():  # by its breaker
                    probe_at = e.timestamp + timedelta(seconds=e.cooldown_s or 0.0)
                    cur.execute(
                        TRIPPED,
                        {
                            **changed,
                            "reason": e.reason,
                            "evidence": Jsonb(e.evidence),
                            "cooldown_s": e.cooldown_s,
                            "probe_at": probe_at,
                        },
                    )
                case Bot.Probing():
                    cur.execute(
                        STATE,
                        {
                            **changed,
                            "state": "probing",
                            "reason": f"circuit breaker: probing after {e.cooldown_s:g} s",
                            "breaker": "half-open",
                        },
                    )
                case Bot.Reinstated():
                    cur.execute(STATE, {**changed, "state": "ready", "reason": None})
                case Bot.Lost():
                    cur.execute(LOST, {**common, "reason": e.reason})
                case Bot.Deregistered():
                    cur.execute(DEREGISTERED, common)
