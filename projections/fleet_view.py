"""The fleet view: one row per bot that ever registered, with its current state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.bots import Bot
from projections.runner import Positioned

INSERT = (
    "INSERT INTO fleet_view (bot_id, name, capabilities, max_concurrency, version_label, "
    "pool, launch_id, takes_messages, state, registered_at, version, position) VALUES "
    "(%(bot_id)s, %(name)s, %(capabilities)s, %(max_concurrency)s, %(version_label)s, "
    "%(pool)s, %(launch_id)s, %(takes_messages)s, 'ready', %(at)s, %(version)s, "
    "%(position)s) ON CONFLICT (bot_id) DO NOTHING"
)
STATE = (
    "UPDATE fleet_view SET state = %(state)s, state_reason = %(reason)s, "
    "version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)
LOST = (
    "UPDATE fleet_view SET state = 'lost', lost_at = %(at)s, lost_reason = %(reason)s, "
    "version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)
DEREGISTERED = (
    "UPDATE fleet_view SET state = 'deregistered', deregistered_at = %(at)s, "
    "version = %(version)s, position = %(position)s "
    "WHERE bot_id = %(bot_id)s AND version < %(version)s"
)


class FleetView:
    name = "fleet"
    tables: tuple[str, ...] = ("fleet_view",)
    topics: tuple[str, ...] = event_topics(Bot)
    handles: frozenset[type] = frozenset(
        {Bot.Registered, Bot.Draining, Bot.Quarantined, Bot.Reinstated, Bot.Lost, Bot.Deregistered}
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
                case Bot.Draining() | Bot.Quarantined():
                    state = "draining" if isinstance(e, Bot.Draining) else "quarantined"
                    cur.execute(STATE, {**common, "state": state, "reason": e.reason})
                case Bot.Reinstated():
                    cur.execute(STATE, {**common, "state": "ready", "reason": None})
                case Bot.Lost():
                    cur.execute(LOST, {**common, "reason": e.reason})
                case Bot.Deregistered():
                    cur.execute(DEREGISTERED, common)
